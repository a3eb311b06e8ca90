"""Response serialisation per role: the ONE place where PII is masked.

Every router is built with :class:`PresentedRoute`, which waits for the
request's audit rows to be committed before it lets the response go, and
passes each JSON response of a masked role (the analyst) through
:func:`present`; the CSV exports call :func:`present` on their rows before
writing them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from tracing.auth import User, mask_json

from .permissions import MASKED_ROLES

__all__ = ["PresentedRoute", "masked_for", "present", "router"]


def masked_for(user: User | None) -> bool:
    return user is not None and user.role in MASKED_ROLES


def present(payload: Any, user: User | None) -> Any:
    """``payload`` as JSON-able data, masked if ``user``'s role sees masked data."""
    data = jsonable_encoder(payload)
    return mask_json(data) if masked_for(user) else data


class PresentedRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def presented(request: Request) -> Response:
            request.state.audit_awaited = True  # Audit hands its commits to us instead of blocking
            response = await handler(request)
            audit = getattr(request.state, "audit", None)
            if audit is not None:
                # Before any byte of the response: its audit rows are committed, or this is a 500.
                await audit.committed()
            user = getattr(request.state, "user", None)
            if masked_for(user) and response.media_type in ("application/json", "application/problem+json"):
                body = present(json.loads(response.body), user)
                headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
                return JSONResponse(body, status_code=response.status_code, headers=headers,
                                    media_type=response.media_type)
            return response

        return presented


def router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes present their responses per role."""
    return APIRouter(route_class=PresentedRoute, **kwargs)
