"""Property-based run of the OpenAPI spec (schemathesis): no 5xx, and every response matches its schema.

Bounded and deterministic (``derandomize``, few examples per operation) so
it stays well under two minutes in ``make test``. Requests are sent as an
admin, so every operation is reachable; the other roles are covered by the
role matrix.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.main import create_app
from api.settings import ApiSettings
from tracing import service
from tracing.auth import auth_repository, create_user
from tracing.store.sqlite import SQLiteStore

from .conftest import seed_batch

NOW = datetime(2022, 4, 20, 12, tzinfo=timezone.utc)
_store = SQLiteStore(":memory:")
service.apply_and_rederive(_store, seed_batch(), now=NOW)
_, TOKEN = create_user(auth_repository(_store), "fuzz-admin", role="admin", now=NOW)
app = create_app(store=_store, clock=lambda: NOW, api=ApiSettings(access_log=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _lifespan():
    with TestClient(app):  # opens app state (auth repository, audit writer); requests below reuse it
        yield


@schema.parametrize()
@settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
