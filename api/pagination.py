"""Opaque cursors over a stable sort key, and the page model."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from .errors import ApiProblem

__all__ = ["Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end")


def encode_cursor(key: Any) -> str:
    raw = json.dumps({"k": key}, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type = str) -> Any:
    """The sort key after which the next page starts (``None`` for the first page); 422 if the cursor is not ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["k"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise ApiProblem(422, "Invalid cursor", "the cursor is not one this API returned") from None
    if not isinstance(key, kind) or isinstance(key, bool):
        raise ApiProblem(422, "Invalid cursor", "the cursor is not one this API returned")
    return key
