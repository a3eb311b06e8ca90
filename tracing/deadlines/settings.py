"""Settings of the deadline engine and its scheduler (environment prefix ``TRACEGRAPH_DEADLINES__``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from graph_models.deadlines import DeadlinePolicy

__all__ = ["DeadlineSettings"]


class DeadlineSettings(BaseSettings):
    """How often the sweep runs and where alerts go.

    Policy fields nest with a double underscore, e.g.
    ``TRACEGRAPH_DEADLINES__POLICY__TRANSFER_POLICY=close_first`` or
    ``TRACEGRAPH_DEADLINES__POLICY__AT_RISK_LEAD=PT45M``.
    """

    model_config = SettingsConfigDict(env_prefix="TRACEGRAPH_DEADLINES__", env_nested_delimiter="__", extra="ignore")

    policy: DeadlinePolicy = Field(default_factory=DeadlinePolicy)
    enabled: bool = Field(default=True, description="Run the sweep inside the API process")
    interval_seconds: float = Field(default=60, gt=0)
    misfire_grace_seconds: int = Field(default=120, ge=1)
    batch_limit: int = Field(default=20_000, ge=1, description="Most investigations evaluated per sweep")
    sweep_processes: int | None = Field(
        default=None, ge=0,
        description="Worker processes that evaluate shares of large sweeps (0: all in the sweeping process). "
        "Unset: one, on a machine with two or more cores, started by the first sweep large enough to share. "
        "Needs the store's URL: an SQLite file or a single Neo4j server (bolt://); see tracing.deadlines.workers",
    )
    lease_seconds: float | None = Field(
        default=None, gt=0,
        description="How long a sweeping process's claim on the store lasts without renewal (each sweep renews "
        "it when it starts); other processes' schedulers wait meanwhile, and take over when it runs out. It "
        "should outlast the longest sweep (a worker may take up to 120 s before its share is redone). "
        "Unset: three intervals, at least 5 minutes",
    )

    @property
    def lease(self) -> timedelta:
        """The effective sweep lease (see ``lease_seconds``)."""
        return timedelta(seconds=self.lease_seconds or max(3 * self.interval_seconds, 300.0))
    webhook_url: str | None = Field(default=None, description="POST each alert as JSON here (optional)")
    webhook_timeout_seconds: float = Field(default=5, gt=0)
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_backoff_seconds: float = Field(default=1.0, gt=0, description="First retry delay; doubles each time")
    webhook_states: frozenset[str] = Field(
        default=frozenset({"at_risk", "missed", "pending", "met_late"}),
        description="Alert states posted to the webhook (all are stored and logged)",
    )
