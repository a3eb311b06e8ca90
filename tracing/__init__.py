"""The tracing engine: store port and adapters, time-respecting traversal, and service functions."""

from .service import apply_and_rederive, chain, clusters, rederive_affected, source_candidates, trace_case
from .transfers.service import plan_transfers

__all__ = [
    "apply_and_rederive",
    "chain",
    "clusters",
    "plan_transfers",
    "rederive_affected",
    "source_candidates",
    "trace_case",
]
