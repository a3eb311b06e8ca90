"""Domain models and policy settings of the contact-tracing graph. Pydantic v2, no I/O."""

from .common import UtcDatetime, as_utc
from .events import Closeness, ContactEvent, ContactKind, ContactSource, TransmissionLink, Visit
from .persons import CASE_STATUSES, Person, PersonStatus
from .places import Place
from .policy import TracingPolicy
from .tracing import (
    Chain,
    ChainDirection,
    ChainMember,
    ChainVia,
    Cluster,
    ContactClass,
    SourceCandidate,
    TracedContact,
    TraceResult,
)

__all__ = [
    "CASE_STATUSES",
    "Chain",
    "ChainDirection",
    "ChainMember",
    "ChainVia",
    "Closeness",
    "Cluster",
    "ContactClass",
    "ContactEvent",
    "ContactKind",
    "ContactSource",
    "Person",
    "PersonStatus",
    "Place",
    "SourceCandidate",
    "TraceResult",
    "TracedContact",
    "TracingPolicy",
    "TransmissionLink",
    "UtcDatetime",
    "Visit",
    "as_utc",
]
