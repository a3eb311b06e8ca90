"""Pure graph algorithms on networkx: time-respecting layers and contact classification."""

from .classify import classify_contacts, infectious_window, is_close_event
from .temporal import Reach, evidence_path, iter_downstream_layers, iter_upstream_layers

__all__ = [
    "Reach",
    "classify_contacts",
    "evidence_path",
    "infectious_window",
    "is_close_event",
    "iter_downstream_layers",
    "iter_upstream_layers",
]
