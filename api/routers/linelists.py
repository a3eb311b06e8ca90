"""Line lists (一览表) of cases: JSON pages or CSV, region-limited, masked for analysts."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator

from fastapi.responses import StreamingResponse

from graph_models import CASE_STATUSES, Person
from tracing.store import GraphStore

from ..deps import AuditDep, CurrentUser, StoreDep
from ..listing import list_persons
from ..pagination import Page, decode_cursor, encode_cursor
from ..permissions import Allow, Perm
from ..presenting import present
from ..presenting import router as make_router
from ..schemas import LineListRow
from ..scoping import check_region_param
from .persons import Cursor, End, Limit, Region, Start, _window

router = make_router(tags=["line lists"])

_CSV_PAGE = 1_000
_CSV_MAX = 200_000


def _rows(store: GraphStore, cases: list[Person]) -> list[LineListRow]:
    ids = [c.id for c in cases]
    infectors: dict[str, list[str]] = {}
    for link in store.links_to(ids):
        infectors.setdefault(link.infectee, []).append(link.infector)
    rows = []
    for c in cases:
        classes = Counter(d.contact_class.value for d in store.derived_for_case(c.id))
        attrs = c.attributes
        rows.append(LineListRow(
            id=c.id, name=c.name, id_number=c.id_number, phone=c.phone, address=c.address, region=c.region,
            status=c.status.value, sex=None if attrs.get("sex") is None else str(attrs["sex"]),
            age=None if attrs.get("age") is None else str(attrs["age"]), onset_at=c.onset_at, sampled_at=c.sampled_at,
            confirmed_at=c.confirmed_at, reported_at=c.reported_at, isolated_at=c.isolated_at,
            infectors=sorted(infectors.get(c.id, [])), close_contacts=classes["close"],
            secondary_contacts=classes["secondary"],
        ))
    return rows


@router.get("/line-list", response_model=Page[LineListRow], dependencies=[Allow(Perm.LINE_LIST)])
def line_list(
    store: StoreDep, user: CurrentUser, audit: AuditDep, region: Region = None, reported_since: Start = None,
    reported_until: End = None, cursor: Cursor = None, limit: Limit = 100,
) -> Page[LineListRow]:
    """Cases with identity, dates, infectors and contact counts, ordered by id."""
    since, until = _window(reported_since, reported_until)
    cases = list_persons(store, region=check_region_param(user, region), statuses=CASE_STATUSES,
                         after=decode_cursor(cursor), limit=limit, reported_since=since, reported_until=until)
    audit.read(c.id for c in cases)
    return Page(items=_rows(store, cases), next_cursor=encode_cursor(cases[-1].id) if len(cases) == limit else None)


@router.get("/line-list.csv", response_class=StreamingResponse, dependencies=[Allow(Perm.LINE_LIST)],
            responses={200: {"content": {"text/csv": {}}, "description": "The line list as CSV (UTF-8, header row)"}})
def line_list_csv(
    store: StoreDep, user: CurrentUser, audit: AuditDep, region: Region = None, reported_since: Start = None,
    reported_until: End = None,
) -> StreamingResponse:
    """The whole line list as CSV (at most 200,000 rows), masked the same way as the JSON."""
    since, until = _window(reported_since, reported_until)
    scope = check_region_param(user, region)
    columns = list(LineListRow.model_fields)
    # Read it all now (bounded), so the audit entry and any error happen before streaming starts.
    rows, after = [], None
    while len(rows) < _CSV_MAX:
        cases = list_persons(store, region=scope, statuses=CASE_STATUSES, after=after, limit=_CSV_PAGE,
                             reported_since=since, reported_until=until)
        rows.extend(present(_rows(store, cases), user))
        if len(cases) < _CSV_PAGE:
            break
        after = cases[-1].id
    audit.read(r["id"] for r in rows)

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([";".join(v) if isinstance(v, list) else ("" if v is None else v)
                             for v in (row[c] for c in columns)])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="line-list.csv"'})
