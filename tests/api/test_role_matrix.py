"""Role × endpoint: every route of the app is listed here once, with the roles allowed to call it.

A route missing from ENDPOINTS fails ``test_every_route_is_in_the_matrix``:
adding an endpoint forces a decision about who may call it.
"""

from __future__ import annotations

import pytest

from .conftest import ROLES

ADMIN, INV, CMD, SITE, ANA = "admin", "investigator", "commander", "site_operator", "analyst"
ALL = frozenset(ROLES)
PUBLIC = None  # no token needed

PERSON = {"id": "W1", "region": "110105", "name": "新人"}
EVENT = {"id": "e9", "a": "C1", "b": "X1", "start": "2022-04-12T08:00:00Z", "end": "2022-04-12T09:00:00Z"}
SITE_ROW = {"id": "S1", "name": "Hotel A", "lat": 39.9, "lon": 116.4, "rooms": 50, "region": "110105"}
VISIT = {"id": "v9", "person_id": "X1", "place_id": "P1", "start": "2022-04-12T08:00:00Z", "end": "2022-04-12T09:00:00Z"}

# (method, route template, concrete path, request kwargs, allowed roles or PUBLIC)
ENDPOINTS: list[tuple[str, str, str, dict, frozenset | None]] = [
    ("GET", "/health", "/health", {}, PUBLIC),
    ("GET", "/ready", "/ready", {}, PUBLIC),
    ("GET", "/me", "/me", {}, ALL),
    ("GET", "/persons", "/persons", {}, {ADMIN, INV, CMD}),
    ("POST", "/persons", "/persons", {"json": [PERSON]}, {ADMIN, INV}),
    ("GET", "/persons/{person_id}", "/persons/C1", {}, {ADMIN, INV, CMD}),
    ("PUT", "/persons/{person_id}", "/persons/W1", {"json": PERSON}, {ADMIN, INV}),
    ("GET", "/persons/{person_id}/contacts", "/persons/C1/contacts", {}, {ADMIN, INV, CMD}),
    ("GET", "/persons/{person_id}/visits", "/persons/C1/visits", {}, {ADMIN, INV, CMD}),
    ("GET", "/persons/{person_id}/links", "/persons/C1/links", {}, {ADMIN, INV, CMD}),
    ("GET", "/persons/{person_id}/chain", "/persons/C1/chain", {}, {ADMIN, INV, CMD}),
    ("GET", "/cases", "/cases", {}, {ADMIN, INV, CMD}),
    ("POST", "/cases/{case_id}/trace", "/cases/C1/trace", {}, {ADMIN, INV}),
    ("GET", "/cases/{case_id}/contacts", "/cases/C1/contacts", {}, {ADMIN, INV, CMD}),
    ("GET", "/cases/{case_id}/sources", "/cases/C1/sources", {}, {ADMIN, INV, CMD}),
    ("POST", "/contacts", "/contacts", {"json": [EVENT]}, {ADMIN, INV}),
    ("PUT", "/contacts/{event_id}", "/contacts/e9", {"json": EVENT}, {ADMIN, INV}),
    ("GET", "/contacts/{event_id}", "/contacts/e1", {}, {ADMIN, INV, CMD}),
    ("POST", "/visits", "/visits", {"json": [VISIT]}, {ADMIN, INV}),
    ("PUT", "/visits/{visit_id}", "/visits/v9", {"json": VISIT}, {ADMIN, INV}),
    ("POST", "/links", "/links", {"json": [{"infector": "C1", "infectee": "X1"}]}, {ADMIN, INV}),
    ("GET", "/places", "/places", {}, {ADMIN, INV, CMD}),
    ("POST", "/places", "/places", {"json": [{"id": "P9", "name": "Shop"}]}, {ADMIN, INV}),
    ("GET", "/places/{place_id}", "/places/P1", {}, {ADMIN, INV, CMD}),
    ("PUT", "/places/{place_id}", "/places/P9", {"json": {"id": "P9"}}, {ADMIN, INV}),
    ("GET", "/places/{place_id}/visits", "/places/P1/visits", {}, {ADMIN, INV, CMD}),
    ("GET", "/clusters", "/clusters", {}, {ADMIN, CMD, ANA}),
    ("GET", "/stats", "/stats", {}, {ADMIN, CMD, ANA}),
    ("POST", "/investigations", "/investigations", {"json": {"case_id": "C1"}}, {ADMIN, INV, CMD}),
    ("POST", "/assist-requests", "/assist-requests",
     {"json": {"id": "as1", "region": "110105", "received_at": "2022-04-20T08:00:00Z", "person_ids": ["X1"]}},
     {ADMIN, INV, CMD}),
    ("GET", "/investigations/{investigation_id}", "/investigations/inv:C1", {}, {ADMIN, INV, CMD}),
    ("POST", "/investigations/{investigation_id}/arrivals", "/investigations/inv:C1/arrivals",
     {"json": {"investigator": "ann", "arrived_at": "2022-04-11T01:00:00Z"}}, {ADMIN, INV, CMD}),
    ("POST", "/investigations/{investigation_id}/no-contacts", "/investigations/inv:C1/no-contacts", {},
     {ADMIN, INV, CMD}),
    ("POST", "/investigations/{investigation_id}/close", "/investigations/inv:C1/close", {}, {ADMIN, INV, CMD}),
    ("GET", "/investigations/{investigation_id}/lookback", "/investigations/inv:C1/lookback", {}, {ADMIN, INV, CMD}),
    ("GET", "/deadlines", "/deadlines", {}, {ADMIN, CMD}),
    ("GET", "/deadlines/compliance", "/deadlines/compliance", {}, {ADMIN, CMD, ANA}),
    ("GET", "/alerts", "/alerts", {}, {ADMIN, CMD}),
    ("POST", "/sites/{site_id}/arrivals", "/sites/S1/arrivals",
     {"json": {"person_ids": ["X1"], "arrived_at": "2022-04-12T00:00:00Z"}}, {ADMIN, SITE}),
    ("GET", "/sites", "/sites", {}, {ADMIN, CMD, SITE}),
    ("POST", "/sites", "/sites", {"json": [SITE_ROW]}, {ADMIN, CMD}),
    ("GET", "/sites/{site_id}/manifest", "/sites/S1/manifest", {}, {ADMIN, CMD, SITE}),
    ("POST", "/transfers/plans", "/transfers/plans", {"json": {}}, {ADMIN, CMD}),
    ("POST", "/transfers/plans/{plan_id}/confirm", "/transfers/plans/none/confirm", {"expect": 404}, {ADMIN, CMD}),
    ("GET", "/census", "/census", {}, {ADMIN, CMD, ANA}),
    ("GET", "/line-list", "/line-list", {}, {ADMIN, INV, CMD, ANA}),
    ("GET", "/line-list.csv", "/line-list.csv", {}, {ADMIN, INV, CMD, ANA}),
    ("GET", "/audit", "/audit", {}, {ADMIN}),
    ("GET", "/audit.csv", "/audit.csv", {}, {ADMIN}),
]


def test_every_route_is_in_the_matrix(api):
    spec = api.client.get("/openapi.json").json()
    routes = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    listed = {(m, t) for m, t, *_ in ENDPOINTS}
    assert routes == listed, f"missing from the matrix: {routes - listed}; stale: {listed - routes}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "path", "kwargs", "allowed"), ENDPOINTS, ids=[f"{m} {t}" for m, t, *_ in ENDPOINTS])
def test_role_matrix(api, role, method, template, path, kwargs, allowed):
    kwargs = dict(kwargs)
    expect = kwargs.pop("expect", 200)
    response = api.request(role, method, path, **kwargs)
    assert response.status_code < 500, response.text
    if allowed is PUBLIC or role in allowed:
        assert response.status_code == expect, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "template", "path", "kwargs", "allowed"),
                         [e for e in ENDPOINTS if e[4] is not PUBLIC], ids=lambda v: v if isinstance(v, str) else "")
def test_anonymous_and_bad_tokens_are_401(api, method, template, path, kwargs, allowed):
    kwargs = {k: v for k, v in kwargs.items() if k != "expect"}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YTpi"}):
        response = api.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
