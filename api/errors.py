"""RFC 9457 problem+json for every error the engine raises on purpose."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tracing.errors import CaseNotFound, ImportRejected, NoInfectiousWindow, PersonNotFound, TracingError

PROBLEM_JSON = "application/problem+json"

_STATUS: dict[type[TracingError], tuple[int, str]] = {
    CaseNotFound: (404, "Case not found"),
    PersonNotFound: (404, "Person not found"),
    NoInfectiousWindow: (422, "No infectious window"),
    ImportRejected: (422, "Import rejected"),
}


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type=PROBLEM_JSON,
    )


async def _tracing_error(request: Request, error: TracingError) -> JSONResponse:
    status, title = next(
        (value for kind, value in _STATUS.items() if isinstance(error, kind)), (400, "Bad request")
    )
    extra: dict[str, object] = {"instance": request.url.path}
    if isinstance(error, ImportRejected):
        extra["errors"] = [
            {"file": p.file, "line": p.line, "reason": p.reason} for p in error.problems if p.severity == "error"
        ]
    return problem(status, title, str(error).splitlines()[0], **extra)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TracingError, _tracing_error)  # type: ignore[arg-type]
