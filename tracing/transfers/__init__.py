"""Transfers to centralized isolation (集中隔离转运): sites, plans, manifests, census.

Layers: :mod:`graph_models.transfers` (models, policy) → :mod:`.planning`
(pure packing) → :mod:`.service` (load, plan, confirm, arrive, discharge;
``now`` injected) → :mod:`.census`, :mod:`.manifests` → :mod:`.cli`.
Storage is behind :class:`.repository.TransferRepository` (SQLite, Neo4j).
"""

from .service import (
    PlanNotFound,
    census,
    confirm_arrival,
    confirm_plan,
    discharge,
    discharge_due,
    due_candidates,
    import_sites,
    import_vehicles,
    plan_transfers,
    record_pickup,
    transfer_repository,
)

__all__ = [
    "PlanNotFound",
    "census",
    "confirm_arrival",
    "confirm_plan",
    "discharge",
    "discharge_due",
    "due_candidates",
    "import_sites",
    "import_vehicles",
    "plan_transfers",
    "record_pickup",
    "transfer_repository",
]
