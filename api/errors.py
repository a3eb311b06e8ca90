"""RFC 9457 problem+json for every error, mapped in one place.

Engine errors (:mod:`tracing.errors`) carry no status; the table below
gives them one. Messages never echo request input (no ``instance`` path, no ids of
things not found, no input values of invalid fields), so no name, phone,
ID number or address can come back in an error.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracing.deadlines import InvestigationNotFound
from tracing.transfers import PlanNotFound
from tracing.errors import CaseNotFound, ImportRejected, NoInfectiousWindow, PersonNotFound, TracingError

__all__ = ["PROBLEM_JSON", "ApiProblem", "RowError", "install", "problem"]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tracegraph.api")

_STATUS: dict[type[TracingError], tuple[int, str]] = {
    CaseNotFound: (404, "Case not found"),
    PersonNotFound: (404, "Person not found"),
    InvestigationNotFound: (404, "Investigation not found"),
    PlanNotFound: (404, "Transfer plan not found"),
    NoInfectiousWindow: (422, "No infectious window"),
    ImportRejected: (422, "Import rejected"),
}


class ApiProblem(Exception):
    """Raised by routers for a problem that is not an engine error (scope, rows of a batch, cursors)."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def RowError(index: int, field: str | None, message: str) -> dict[str, Any]:  # noqa: N802 - a record shape
    return {"index": index, "field": field, "message": message}


def problem(status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status, media_type=PROBLEM_JSON, headers=headers,
    )


async def _tracing_error(request: Request, error: TracingError) -> JSONResponse:
    status, title = next(
        (value for kind, value in _STATUS.items() if isinstance(error, kind)), (400, "Bad request")
    )
    extra: dict[str, object] = {}
    if status == 404:
        # Ids come from the request (the path); a client may have put PII there. Echo nothing.
        return problem(status, title, "not in the graph, or not in your region")
    if isinstance(error, ImportRejected):
        extra["errors"] = [
            {"file": p.file, "line": p.line, "reason": p.reason} for p in error.problems if p.severity == "error"
        ]
    return problem(status, title, str(error).splitlines()[0], **extra)


async def _api_problem(request: Request, error: ApiProblem) -> JSONResponse:
    return problem(error.status, error.title, error.detail, **error.extra)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    try:
        title = HTTPStatus(error.status_code).phrase
    except ValueError:
        title = "Error"
    detail = error.detail if isinstance(error.detail, str) else title
    return problem(error.status_code, title, detail, headers=getattr(error, "headers", None))


def _row_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    rows = []
    for e in error.errors():
        loc = list(e.get("loc", ()))
        where = loc[0] if loc else "body"
        rest = loc[1:]
        index = None
        if where == "body" and rest and isinstance(rest[0], int):
            index, rest = rest[0], rest[1:]
        # Never echo the input (it may be a name or a phone number): location, type and message only.
        rows.append({"index": index, "location": where, "field": ".".join(str(x) for x in rest) or None,
                     "type": e.get("type"), "message": e.get("msg", "invalid")})
    return rows


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    rows = _row_errors(error)
    if any(r["type"] == "json_invalid" for r in rows):
        return problem(400, "Malformed JSON", "the request body is not valid JSON")
    bad = sorted({r["index"] for r in rows if r["index"] is not None})
    detail = (f"{len(bad)} invalid row(s); nothing was written" if bad
              else f"{len(rows)} invalid field(s)")
    return problem(422, "Validation failed", detail, errors=rows)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal Server Error", "unexpected error; it was logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(TracingError, _tracing_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiProblem, _api_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
