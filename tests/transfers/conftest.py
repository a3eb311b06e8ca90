"""A small outbreak with isolation sites and vehicles, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from graph_models import ContactClass, Person, TracedContact
from graph_models.transfers import IsolationSite, Vehicle
from tracing.store.port import GraphBatch
from tracing.transfers import transfer_repository

NOW = datetime(2022, 4, 20, 12, 0, tzinfo=UTC)


def t(hour: int, minute: int = 0, day: int = 20) -> datetime:
    return datetime(2022, 4, day, hour, minute, tzinfo=UTC)


CASE = Person(id="P0", name="病例 Zero", status="confirmed", onset_at=t(8, day=18), reported_at=t(9),
              confirmed_at=t(8), region="110105", lat=39.90, lon=116.40, household_id="HP0")
PERSONS = [
    CASE,
    # Household H1: two close contacts living together.
    Person(id="C1", name="张三", phone="13800000001", household_id="H1", address="朝阳路1号", region="110105",
           lat=39.91, lon=116.41),
    Person(id="C2", name="李四", phone="13800000002", household_id="H1", address="朝阳路1号", region="110105",
           lat=39.91, lon=116.41),
    Person(id="C3", name="王五", phone="13800000003", address="朝阳路3号", region="110105", lat=39.92, lon=116.45),
    Person(id="S1", name="赵六", phone="13800000004", address="海淀路4号", region="110108", lat=39.98, lon=116.30),
    Person(id="G1", name="General One", region="110105", lat=39.90, lon=116.40),
    Person(id="A1", name="Overseas One", phone="13800000005", region="110105", lat=39.93, lon=116.43,
           attributes={"arrival_category": "overseas", "arrived_at": "2022-04-19T06:00:00+00:00"}),
    Person(id="R1", name="Risk Area One", region="110108", lat=39.97, lon=116.31,
           attributes={"arrival_category": "中高风险区"}),
    Person(id="X1", name="Not flagged", region="110108", lat=39.97, lon=116.31, attributes={"arrival_category": "?"}),
]
DERIVED = [
    TracedContact(case_id="P0", person_id="C1", contact_class=ContactClass.CLOSE, source_id="P0",
                  exposed_at=t(10, day=19), evidence=["e1"]),
    TracedContact(case_id="P0", person_id="C2", contact_class=ContactClass.CLOSE, source_id="P0",
                  exposed_at=t(11, day=19), evidence=["e2"]),
    TracedContact(case_id="P0", person_id="C3", contact_class=ContactClass.CLOSE, source_id="P0",
                  exposed_at=t(9, day=18), evidence=["e4"]),
    TracedContact(case_id="P0", person_id="S1", contact_class=ContactClass.SECONDARY, source_id="C1",
                  exposed_at=t(18, day=19), evidence=["e1", "e3"]),
    TracedContact(case_id="P0", person_id="G1", contact_class=ContactClass.GENERAL, source_id="P0",
                  exposed_at=t(15, day=19), evidence=["e6"]),
]
DUE = {"C1", "C2", "C3", "S1", "A1", "R1"}
SITES = [
    IsolationSite(id="H-EAST", name="东区隔离酒店 East Hotel", lat=39.915, lon=116.44, region="110105", rooms=3,
                  beds_per_room=2, address="东三环1号", phone="010-1111"),
    IsolationSite(id="H-WEST", name="西区隔离酒店 West Hotel", lat=39.975, lon=116.305, region="110108", rooms=2),
    IsolationSite(id="H-RESERVE", name="备用 Reserve", lat=39.95, lon=116.40, region="110105", rooms=20,
                  status="reserve"),
    IsolationSite(id="HOSP", name="定点医院 Hospital", kind="designated_hospital", lat=39.90, lon=116.40, rooms=50),
]
VEHICLES = [
    Vehicle(id="V1", seats=4, base_lat=39.90, base_lon=116.40, base="朝阳车队", plate="京A-00001"),
    Vehicle(id="V2", seats=2, base_lat=39.99, base_lon=116.30, base="海淀车队", plate="京A-00002"),
]


def build_graph(store) -> None:
    store.apply(GraphBatch(persons=PERSONS))
    store.replace_derived("P0", DERIVED, NOW - timedelta(hours=1))


@pytest.fixture
def repo(store):
    build_graph(store)
    repo = transfer_repository(store)
    repo.upsert_sites(SITES)
    repo.upsert_vehicles(VEHICLES)
    return repo
