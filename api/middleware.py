"""Pure ASGI middleware: request size limit (413 problem+json) and one structured log line per request."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

__all__ = ["JsonFormatter", "RequestGuard"]

access_log = logging.getLogger("tracegraph.access")


def _problem_bytes(status: int, title: str, detail: str) -> bytes:
    return json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()


class RequestGuard:
    """Refuses bodies over ``max_body_bytes`` (by Content-Length, or while streaming) and logs each request."""

    def __init__(self, app: Any, *, max_body_bytes: int, access_log_enabled: bool = True) -> None:
        self.app, self.max_body_bytes, self.log = app, max_body_bytes, access_log_enabled

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        status_holder = {"status": 500, "started": False}

        exceeded = False

        async def send_wrapper(message: dict) -> None:
            if exceeded:  # the app answered a truncated body: answer 413 instead, once
                if message["type"] == "http.response.start" and not status_holder["started"]:
                    await self._reject(send_wrapper_raw)
                return
            await send_wrapper_raw(message)

        async def send_wrapper_raw(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        try:
            too_large = length is not None and int(length) > self.max_body_bytes
        except ValueError:
            too_large = True
        if too_large:
            await self._reject(send_wrapper_raw)
        else:
            received = 0

            async def receive_wrapper() -> dict:
                nonlocal received, exceeded
                if exceeded:
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        # Stop reading: hand the app an empty, final chunk; its answer is replaced by 413.
                        exceeded = True
                        return {"type": "http.request", "body": b"", "more_body": False}
                return message

            await self.app(scope, receive_wrapper, send_wrapper)
        if self.log:
            user = scope.get("state", {}).get("user")
            route = scope.get("route")
            access_log.info(
                "request",
                extra={"fields": {
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "route": getattr(route, "path", None), "status": status_holder["status"],
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": getattr(user, "name", None), "role": getattr(getattr(user, "role", None), "value", None),
                }},
            )

    async def _reject(self, send: Any) -> None:
        body = _problem_bytes(413, "Content Too Large", f"request body over {self.max_body_bytes} bytes")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the record's ``fields``."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)
