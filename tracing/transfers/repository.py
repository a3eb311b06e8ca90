"""The transfer repository port: sites, vehicles, plans (proposals) and transfers.

Adapters hold no isolation rules. The one guarded write, :meth:`insert_transfers`,
is a storage-level compare-and-set (like the deadline repository's expected
state): a transfer is inserted only if its id is new, its person holds no
other active transfer, and its room is not held by another household; the
check and the inserts are one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

from graph_models.transfers import IsolationSite, Transfer, TransferPlan, Vehicle

__all__ = ["InsertResult", "TransferRepository"]


class InsertResult(NamedTuple):
    """What :meth:`TransferRepository.insert_transfers` did."""

    inserted: list[str]
    existing: list[str]
    refused: dict[str, str]  # transfer id → reason


@runtime_checkable
class TransferRepository(Protocol):
    # --- sites and vehicles -------------------------------------------------------------------
    def upsert_sites(self, sites: Sequence[IsolationSite]) -> None: ...

    def sites(self) -> list[IsolationSite]:
        """Every site, ordered by id."""

    def upsert_vehicles(self, vehicles: Sequence[Vehicle]) -> None: ...

    def vehicles(self) -> list[Vehicle]:
        """Every vehicle, ordered by id."""

    # --- plans --------------------------------------------------------------------------------
    def save_plan(self, plan: TransferPlan) -> None:
        """Store a proposal (upsert by id)."""

    def get_plan(self, plan_id: str) -> TransferPlan | None: ...

    def latest_plan_id(self) -> str | None: ...

    # --- transfers ----------------------------------------------------------------------------
    def insert_transfers(
        self, transfers: Sequence[Transfer], *, release: Sequence[str] = (), now: datetime | None = None
    ) -> InsertResult:
        """Atomically cancel the transfers ``release`` (at ``now``; only those not picked up) and insert ``transfers``.

        Already stored ids are skipped (idempotent). A transfer is refused if its
        person holds another active (not discharged, not cancelled) transfer, or
        its ``(site_id, room)`` is held by an active transfer of another household.
        """

    def update_transfers(self, transfers: Sequence[Transfer]) -> None:
        """Store changed timestamps of existing transfers (by id)."""

    def active_transfers(self) -> list[Transfer]:
        """Transfers not discharged and not cancelled (they hold rooms), ordered by id."""

    def transfers_of(self, person_ids: Iterable[str]) -> dict[str, list[Transfer]]:
        """Every transfer of each person, oldest confirmation first."""

    def transfers(
        self, *, site_id: str | None = None, vehicle_id: str | None = None, plan_id: str | None = None,
        active_only: bool = False,
    ) -> list[Transfer]:
        """Transfers filtered by site / vehicle / plan, ordered by vehicle, batch, pickup order, id."""
