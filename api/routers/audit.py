"""The audit log (admins): who read or wrote which persons' data, when, through which endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import StreamingResponse

from tracing.auth import AuditEntry, audit_csv
from tracing.auth.service import iter_audit

from ..deps import StateDep
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import router as make_router
from .persons import End, Start, _window

router = make_router(tags=["audit"])

UserFilter = Annotated[str | None, Query(max_length=64)]
PersonFilter = Annotated[str | None, Query(max_length=128)]


@router.get("/audit", response_model=Page[AuditEntry], dependencies=[Allow(Perm.AUDIT_READ)])
def audit_log(
    state: StateDep, user: UserFilter = None, person_id: PersonFilter = None, since: Start = None,
    until: End = None, cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEntry]:
    """Entries in sequence order, filtered by user, person and time."""
    since, until = _window(since, until)
    entries = state.auth.audit(after_seq=decode_cursor(cursor, int) or 0, limit=limit, user=user,
                               person_id=person_id, since=since, until=until)
    return Page(items=entries, next_cursor=encode_cursor(entries[-1].seq) if len(entries) == limit else None)


@router.get("/audit.csv", response_class=StreamingResponse, dependencies=[Allow(Perm.AUDIT_READ)],
            responses={200: {"content": {"text/csv": {}}, "description": "The audit log as CSV"}})
def audit_log_csv(
    state: StateDep, user: UserFilter = None, person_id: PersonFilter = None, since: Start = None, until: End = None,
) -> StreamingResponse:
    """The audit log as CSV (person ids joined with ``;``)."""
    since, until = _window(since, until)
    entries = iter_audit(state.auth, user=user, person_id=person_id, since=since, until=until)
    return StreamingResponse(audit_csv(entries), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
