"""Domain models and policy settings of the contact-tracing graph. Pydantic v2, no I/O."""

from .common import UtcDatetime, as_utc
from .events import Closeness, ContactEvent, ContactKind, ContactSource, TransmissionLink, Visit
from .persons import CASE_STATUSES, Person, PersonStatus
from .places import Place
from .policy import TracingPolicy
from .transfers import (
    CapacityStandard,
    CensusReport,
    IsolationCategory,
    IsolationPolicy,
    IsolationSite,
    Transfer,
    TransferPlan,
    TransferState,
    Vehicle,
)
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
    "CapacityStandard",
    "CensusReport",
    "IsolationCategory",
    "IsolationPolicy",
    "IsolationSite",
    "Transfer",
    "TransferPlan",
    "TransferState",
    "Vehicle",
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
