"""Behaviour of the API beyond the role matrix: scoping, batches, idempotency, pages, limits, audit, masking."""

from __future__ import annotations

import json
import sqlite3

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from tracing.auth import TokenCache, auth_repository
from tracing.store.sqlite import SQLiteStore

from .conftest import PII, RAW_PII, make_api

# --- auth ---------------------------------------------------------------------------------------


def test_revoked_token_is_refused(api, now):
    assert api.get("investigator", "/me").status_code == 200
    auth_repository(api.store).revoke_user("investigator", at=now)
    response = api.get("investigator", "/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_cached_token_is_refused_within_the_ttl_of_its_revocation(sqlite_store, now):
    for api in make_api(sqlite_store, now, api_settings=ApiSettings(token_cache_seconds=10, access_log=False)):
        clock = [1000.0]
        api.app.state.tg.tokens = TokenCache(10, clock=lambda: clock[0])
        assert api.get("investigator", "/me").status_code == 200  # now cached
        auth_repository(api.store).revoke_user("investigator", at=now)
        auth_repository(api.store).revoke_user("commander", at=now)
        clock[0] += 9.9
        # The documented window: a cached token still works for at most token_cache_seconds ...
        assert api.get("investigator", "/me").status_code == 200
        # ... and one that was not cached is refused at once.
        assert api.get("commander", "/me").status_code == 401
        clock[0] += 0.2  # 10.1 s after the cache entry was made
        response = api.get("investigator", "/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_tokens_are_stored_hashed(api):
    rows = api.store.query("SELECT token_hash FROM auth_tokens")
    assert rows and all(len(h) == 64 for (h,) in rows)
    assert not set(api.tokens.values()) & {h for (h,) in rows}


# --- region scoping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("admin", {"C1", "X1", "Y1", "Z1", "N1"}),
        ("investigator", {"C1", "X1"}),  # 110105
        ("commander", {"C1", "X1", "Y1"}),  # 11: both Beijing counties, not Shanghai, not region-less
    ],
)
def test_region_subtree_decides_who_sees_whom(api, role, visible):
    listed = {p["id"] for p in api.get(role, "/persons").json()["items"]}
    assert listed == visible
    for pid in ("C1", "X1", "Y1", "Z1", "N1"):
        response = api.get(role, f"/persons/{pid}")
        if pid in visible:
            assert response.status_code == 200
        else:  # exactly like an unknown id: existence is not revealed
            unknown = api.get(role, "/persons/NOBODY")
            assert response.status_code == unknown.status_code == 404
            assert response.json()["title"] == unknown.json()["title"]


def test_region_filter_narrows_but_never_widens(api):
    assert {p["id"] for p in api.get("commander", "/persons", params={"region": "110106"}).json()["items"]} == {"Y1"}
    assert api.get("investigator", "/persons", params={"region": "31"}).json()["items"] == []
    assert {p["id"] for p in api.get("investigator", "/persons", params={"region": "11"}).json()["items"]} == {"C1", "X1"}


def test_out_of_region_case_cannot_be_traced(api):
    assert api.post("investigator", "/cases/Z1/trace").status_code == 404
    assert api.post("investigator", "/cases/C1/trace").status_code == 200


# --- batches ------------------------------------------------------------------------------------


def test_batch_with_one_bad_row_writes_nothing_and_names_the_row(api):
    rows = [{"id": "W1", "region": "110105"}, {"id": "W2", "region": "110105", "lat": 1.0},
            {"id": "W3", "region": "110105", "status": "zombie"}]
    response = api.post("investigator", "/persons", json=rows)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and response.headers["content-type"] == "application/problem+json"
    assert sorted({e["index"] for e in body["errors"]}) == [1, 2]
    assert {e["field"] for e in body["errors"] if e["index"] == 2} == {"status"}
    assert api.get("admin", "/persons/W1").status_code == 404


def test_batch_outside_region_is_rejected_row_by_row(api):
    rows = [{"id": "W1", "region": "110105"}, {"id": "W2", "region": "310101"}, {"id": "Y1", "region": "110105"}]
    response = api.post("investigator", "/persons", json=rows)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "region"), (2, "id")]
    assert api.get("admin", "/persons/W1").status_code == 404


def test_contacts_need_known_persons_and_one_in_region(api):
    ok = {"id": "e9", "a": "X1", "b": "Z1", "start": "2022-04-12T08:00:00Z", "end": "2022-04-12T09:00:00Z"}
    foreign = {**ok, "id": "e10", "a": "Y1", "b": "Z1"}
    ghost = {**ok, "id": "e11", "b": "GHOST"}
    response = api.post("investigator", "/contacts", json=[ok, foreign, ghost])
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "a"), (2, "b")]
    assert api.post("investigator", "/contacts", json=[ok]).json() == {"written": 1, "rederived_cases": ["C1", "Z1"]}


def test_writes_rederive_contacts(api):
    event = {"id": "e9", "a": "C1", "b": "Y1", "start": "2022-04-12T08:00:00Z", "end": "2022-04-12T09:00:00Z"}
    assert api.post("admin", "/contacts", json=[event]).status_code == 200
    derived = {c["person_id"]: c["contact_class"] for c in api.get("admin", "/cases/C1/contacts").json()}
    assert derived["Y1"] == "close"


def test_malformed_json_is_400_and_wrong_shapes_422(api):
    response = api.post("admin", "/persons", content=b"[{", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert api.post("admin", "/persons", json={"id": "x"}).status_code == 422
    assert api.put("admin", "/persons/A", json={"id": "B"}).status_code == 422


def test_batch_size_is_bounded(api):
    assert api.post("admin", "/places", json=[{"id": f"p{i}"} for i in range(10_001)]).status_code == 422


def test_request_body_limit_is_413(sqlite_store, now):
    for api in make_api(sqlite_store, now, api_settings=ApiSettings(max_body_bytes=2048,
                                                                     access_log=False)):
        big = [{"id": f"p{i}", "name": "x" * 50} for i in range(100)]
        response = api.post("admin", "/places", json=big)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        chunked = api.post("admin", "/places", content=iter([json.dumps(big).encode()]),
                           headers={"content-type": "application/json"})
        assert chunked.status_code == 413


# --- idempotency --------------------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_a_different_body(api):
    headers = {"Idempotency-Key": "k-1"}
    first = api.post("admin", "/places", json=[{"id": "P7"}], headers=headers)
    again = api.post("admin", "/places", json=[{"id": "P7"}], headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = api.post("admin", "/places", json=[{"id": "P8"}], headers=headers)
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert api.get("admin", "/places/P8").status_code == 404
    # Keys are per user.
    assert "idempotent-replayed" not in api.post("investigator", "/places", json=[{"id": "P7"}], headers=headers).headers


def test_a_retry_while_the_first_request_runs_is_told_to_wait(api, now):
    from tracing.auth.models import IdempotencyRecord
    from tracing.auth.service import auth_repository, request_fingerprint

    body = b'[{"id":"P9"}]'
    # The first request with this key is still running: its reservation is in the store.
    auth_repository(api.store).put_idempotent(IdempotencyRecord(
        user="admin", key="k-9", request_hash=request_fingerprint("POST", "/places", body),
        status=IdempotencyRecord.PENDING, body="", created_at=now,
    ))
    retry = api.post("admin", "/places", content=body,
                     headers={"Idempotency-Key": "k-9", "Content-Type": "application/json"})
    assert retry.status_code == 409 and retry.headers["retry-after"] == "1"
    assert retry.headers["content-type"] == "application/problem+json"
    assert api.get("admin", "/places/P9").status_code == 404  # the retry did not run it a second time


# --- pagination and filters ----------------------------------------------------------------------------


def test_cursor_pages_cover_everything_once(api):
    api.post("admin", "/persons", json=[{"id": f"Q{i:03d}", "region": "110105"} for i in range(25)])
    seen, cursor = [], None
    while True:
        page = api.get("admin", "/persons", params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 30 and seen == sorted(seen)
    assert api.get("admin", "/persons", params={"cursor": "not-a-cursor!"}).status_code == 422


def test_time_range_filters(api):
    cases = api.get("admin", "/cases", params={"reported_since": "2022-04-12T00:00:00Z"}).json()["items"]
    assert [c["id"] for c in cases] == ["Z1"]
    events = api.get("admin", "/persons/C1/contacts", params={"start": "2022-04-09T00:00:00Z"}).json()
    assert [e["id"] for e in events] == ["e3"]
    bad = api.get("admin", "/persons/C1/contacts", params={"start": "2022-04-10T00:00:00Z", "end": "2022-04-09T00:00:00Z"})
    assert bad.status_code == 422


# --- audit ----------------------------------------------------------------------------------------------


def test_person_reads_and_writes_are_audited(api):
    api.get("commander", "/persons/C1")
    api.get("investigator", "/persons/C1/chain", params={"hops": 2})
    api.post("investigator", "/persons", json=[{"id": "W1", "region": "110105"}])
    entries = api.get("admin", "/audit").json()["items"]
    assert [(e["user"], e["endpoint"], e["action"]) for e in entries] == [
        ("commander", "/persons/{person_id}", "read"),
        ("investigator", "/persons/{person_id}/chain", "read"),
        ("investigator", "/persons", "write"),
    ]
    assert entries[0]["person_ids"] == ["C1"] and "X1" in entries[1]["person_ids"]
    by_person = api.get("admin", "/audit", params={"person_id": "W1"}).json()["items"]
    assert [e["action"] for e in by_person] == ["write"]
    csv_text = api.get("admin", "/audit.csv").text
    assert csv_text.splitlines()[0].startswith("seq,at,user,role")
    assert len(csv_text.splitlines()) == 4


def test_audit_log_is_append_only(api):
    api.get("admin", "/persons/C1")
    with pytest.raises(Exception, match="append-only"):
        with api.store.transaction() as conn:
            conn.execute("DELETE FROM auth_audit")
    assert not hasattr(auth_repository(api.store), "delete_audit")


@pytest.mark.parametrize("group_commit", [True, False])
def test_audit_row_is_committed_before_the_response(tmp_path, now, group_commit):
    store = SQLiteStore(tmp_path / "graph.db")  # a file, so that a second connection can look
    try:
        settings = ApiSettings(audit_group_commit=group_commit, access_log=False)
        for api in make_api(store, now, api_settings=settings):
            assert api.get("admin", "/persons/C1").status_code == 200
            assert api.get("admin", "/persons/C1/chain", params={"hops": 2}).status_code == 200
            # No flush, no wait: another connection already sees both rows once the responses are in.
            other = SQLiteStore(tmp_path / "graph.db")
            try:
                entries = auth_repository(other).audit()
            finally:
                other.close()
            assert [(e.endpoint, e.person_ids) for e in entries] == [
                ("/persons/{person_id}", ["C1"]), ("/persons/{person_id}/chain", ["C1", "X1", "Y1", "Z1"])]
            assert [e["person_ids"] for e in api.get("admin", "/audit").json()["items"]][:1] == [["C1"]]
    finally:
        store.close()


@pytest.mark.parametrize("group_commit", [True, False])
@pytest.mark.parametrize("path", ["/persons/C1", "/persons/C1/chain", "/cases/C1/contacts", "/line-list.csv"])
def test_failed_audit_write_answers_500_without_data(sqlite_store, now, group_commit, path):
    for api in make_api(sqlite_store, now, api_settings=ApiSettings(audit_group_commit=group_commit,
                                                                    access_log=False)):
        def refuse(entries):
            raise sqlite3.OperationalError("disk I/O error")

        api.app.state.tg.audit.repo.append_audit = refuse
        response = api.get("admin", path)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
        assert not any(value in response.text for value in RAW_PII)
        assert "X1" not in response.text and "C1" not in response.text


# --- masking and PII leaks ----------------------------------------------------------------------------------


def test_analyst_line_list_is_masked(api):
    rows = {r["id"]: r for r in api.get("analyst", "/line-list").json()["items"]}
    assert rows["C1"]["name"] == "张*丰"
    assert rows["C1"]["id_number"] == "110***********1234"
    assert rows["C1"]["phone"] == "138****5678"
    assert rows["C1"]["address"] == "北京市朝阳区"
    assert rows["Z1"]["name"] == "Z*********u"
    assert rows["Z1"]["address"] == "Huangpu District, Shanghai"
    csv_text = api.get("analyst", "/line-list.csv").text
    assert "张*丰" in csv_text and "张三丰" not in csv_text
    full = {r["id"]: r for r in api.get("commander", "/line-list").json()["items"]}
    assert full["C1"]["name"] == "张三丰"  # others see them (the commander's region is 11)


def _all_bodies(api, role):
    from .test_role_matrix import ENDPOINTS

    for method, _, path, kwargs, _ in ENDPOINTS:
        yield path, api.request(role, method, path, **{k: v for k, v in kwargs.items() if k != "expect"})
    for path in ("/persons/Y1", "/persons/Z1", "/persons/N1", "/line-list?region=31", "/cases/Z1/contacts"):
        yield path, api.get(role, path)
    # Bad input that carries PII must not come back in the error.
    yield "bad-person", api.post(role, "/persons", json=[{"id": "B1", "name": PII["C1"]["name"], "lat": 1,
                                                          "phone": PII["C1"]["phone"], "status": PII["X1"]["name"]}])
    yield "bad-id", api.get(role, f"/persons/{PII['C1']['id_number']}x")


@pytest.mark.parametrize("role", ["analyst", "investigator", "commander", "site_operator"])
def test_no_pii_leaks_in_masked_responses_or_errors(api, role):
    leaks = []
    for path, response in _all_bodies(api, role):
        text = response.content.decode("utf-8", "replace")
        is_error = response.status_code >= 400
        for value in RAW_PII:
            if value in text and (role == "analyst" or is_error):
                leaks.append((path, response.status_code, value))
        if role == "analyst" and not is_error:
            assert "39.912345" not in text and "116.456789" not in text, path
    assert leaks == []


# --- ops ----------------------------------------------------------------------------------------------------


def test_health_ready_and_docs(api):
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json()["status"] == "ready"
    assert api.client.get("/docs").status_code == 200
    assert "x-request-id" in api.client.get("/health").headers


def test_ready_is_503_before_startup(sqlite_store):
    client = TestClient(create_app(store=sqlite_store), raise_server_exceptions=False)  # no lifespan
    response = client.get("/ready")
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
