"""API fixtures: a seeded SQLite store, one user per role, and a client that speaks as any of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from graph_models import Place, TransmissionLink, Visit
from tests.builders import at, case, contact, person
from tracing import service
from tracing.auth import auth_repository, create_user
from tracing.store import GraphBatch

#: PII of the seeded persons: no analyst response and no error body may contain any of these.
PII = {
    "C1": dict(name="张三丰", id_number="110105199001011234", phone="13812345678", address="北京市朝阳区建国路88号",
               lat=39.912345, lon=116.456789),
    "X1": dict(name="李小四", id_number="110105198502023456", phone="13987654321", address="北京市朝阳区光华路9号"),
    "Y1": dict(name="王五", id_number="110106197703034567", phone="13700001111", address="北京市丰台区丰台路1号"),
    "Z1": dict(name="Zhao Liuliu", id_number="310101196604045678", phone="13622223333",
               address="88 Nanjing Road, Huangpu District, Shanghai"),
    "N1": dict(name="钱七七", phone="13511112222"),
}
RAW_PII = sorted({str(v) for fields in PII.values() for k, v in fields.items() if k not in ("lat", "lon")})

REGIONS = {"C1": "110105", "X1": "110105", "Y1": "110106", "Z1": "310101", "N1": None}


def seed_batch() -> GraphBatch:
    persons = [
        case("C1", at(10), region="110105", reported_at=at(11), **PII["C1"]),
        person("X1", region="110105", **PII["X1"]),
        person("Y1", region="110106", **PII["Y1"]),
        case("Z1", at(12), region="310101", reported_at=at(13), **PII["Z1"]),
        person("N1", **PII["N1"]),
    ]
    return GraphBatch(
        persons=persons,
        places=[Place(id="P1", name="Market", kind="market", region="110105", lat=39.9, lon=116.4)],
        events=[contact("e1", "C1", "X1", at(8)), contact("e2", "X1", "Y1", at(9)), contact("e3", "C1", "Z1", at(9)),
                contact("e4", "Y1", "N1", at(9))],
        visits=[Visit(id="v1", person_id="C1", place_id="P1", start=at(9), end=at(9, 2)),
                Visit(id="v2", person_id="Y1", place_id="P1", start=at(9, 1), end=at(9, 3))],
        links=[TransmissionLink(infector="C1", infectee="Z1", exposed_at=at(9))],
    )


USERS = {
    "admin": dict(role="admin"),
    "investigator": dict(role="investigator", region="110105"),
    "commander": dict(role="commander", region="11"),
    "site_operator": dict(role="site_operator", site_id="S1"),
    "analyst": dict(role="analyst"),
}
ROLES = list(USERS)


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    store: object
    app: object

    def as_(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def request(self, role: str | None, method: str, path: str, **kwargs):
        headers = {**self.as_(role), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, role, path, **kw):
        return self.request(role, "GET", path, **kw)

    def post(self, role, path, **kw):
        return self.request(role, "POST", path, **kw)

    def put(self, role, path, **kw):
        return self.request(role, "PUT", path, **kw)


def make_api(store, now, *, api_settings: ApiSettings | None = None, extra_users: dict | None = None) -> Iterator[Api]:
    service.apply_and_rederive(store, seed_batch(), now=now - timedelta(days=5))
    repo = auth_repository(store)
    tokens = {}
    for name, fields in {**USERS, **(extra_users or {})}.items():
        _, tokens[name] = create_user(repo, name, now=now, **fields)
    settings = api_settings or ApiSettings(token_cache_seconds=0, access_log=False)
    app = create_app(store=store, clock=lambda: now, api=settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, tokens=tokens, store=store, app=app)


@pytest.fixture
def api(sqlite_store, now) -> Iterator[Api]:
    yield from make_api(sqlite_store, now)
