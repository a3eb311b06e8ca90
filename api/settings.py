"""HTTP settings (environment prefix ``TRACEGRAPH_API__``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApiSettings", "api_settings"]


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACEGRAPH_API__", extra="ignore")

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Larger requests get 413")
    max_batch_rows: int = Field(default=10_000, ge=1, description="Most rows in one batch write")
    token_cache_seconds: float = Field(default=10, ge=0, description="Revocation takes effect within this time")
    audit_group_commit: bool = Field(
        default=True,
        description="Audit rows of the requests of one event-loop turn are committed in one transaction "
        "(each response still waits for its own rows); false = each request appends its own",
    )
    idempotency_ttl_hours: float = Field(default=24, gt=0)
    access_log: bool = Field(default=True, description="One JSON log line per request")


def api_settings(settings: object | None) -> ApiSettings:
    """``settings.api`` if the service settings carry one, else from the environment."""
    nested = getattr(settings, "api", None)
    return nested if isinstance(nested, ApiSettings) else ApiSettings()
