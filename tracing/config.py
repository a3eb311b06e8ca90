"""Settings from the environment (prefix ``TRACEGRAPH_``); the policy is a setting, not a constant."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from graph_models import TracingPolicy

from .deadlines.settings import DeadlineSettings
from .transfers.settings import TransferSettings


class Settings(BaseSettings):
    """Service settings.

    ``TRACEGRAPH_STORE`` selects the backend: ``sqlite:///path.db`` (default,
    embedded) or ``neo4j://host:7687`` / ``neo4j+s://…`` (Neo4j cluster or
    Aura) with ``TRACEGRAPH_NEO4J_USER`` / ``TRACEGRAPH_NEO4J_PASSWORD``.
    Policy fields nest with a double underscore, e.g.
    ``TRACEGRAPH_TRACING__LOOK_BACK=P2D`` or ``TRACEGRAPH_TRACING__TRACE_SECONDARY=false``.
    """

    model_config = SettingsConfigDict(env_prefix="TRACEGRAPH_", env_nested_delimiter="__", extra="ignore")

    store: str = Field(default="sqlite:///tracegraph.db")
    display_timezone: str = Field(
        default="Asia/Shanghai", description="Time zone for times shown to people (CLI tables); data stays UTC"
    )
    tracing: TracingPolicy = Field(default_factory=TracingPolicy)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    transfers: TransferSettings = Field(default_factory=TransferSettings)


def get_settings() -> Settings:
    return Settings()
