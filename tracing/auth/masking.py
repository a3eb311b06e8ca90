"""PII masking for masked views (the analyst role): one function, :func:`mask_json`, applied to whole payloads.

* names keep first and last character (``张*三``; two characters: ``张*``);
* ID numbers and phones keep the first 3 and last 4 characters (shorter
  values keep less, very short ones nothing);
* addresses are cut after the district (区/县/旗, else 市), or reduced to
  their non-street comma-separated parts;
* coordinates are rounded to 2 decimals (about 1 km).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASKED_KEYS", "mask_address", "mask_coordinate", "mask_digits", "mask_json", "mask_name"]

_CJK_DISTRICT = re.compile(r"^.*?(?:区|县|旗)")
_CJK_CITY = re.compile(r"^.*市")


def mask_name(value: str) -> str:
    value = value.strip()
    if len(value) <= 1:
        return "*"
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_digits(value: str) -> str:
    """ID number or phone: keep the first 3 and last 4 (11+ chars), 2 and 2 (7–10), else nothing."""
    n = len(value)
    if n >= 11:
        return value[:3] + "*" * (n - 7) + value[-4:]
    if n >= 7:
        return value[:2] + "*" * (n - 4) + value[-2:]
    return "*" * n


def mask_address(value: str) -> str:
    match = _CJK_DISTRICT.match(value) or _CJK_CITY.match(value)
    if match and match.end() < len(value):
        return match.group(0)
    if match:
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) >= 2:
        return ", ".join(parts[1:])
    return "***"


def mask_coordinate(value: float) -> float:
    return round(value, 2)


_MASKERS = {
    "name": mask_name,
    "id_number": mask_digits,
    "phone": mask_digits,
    "address": mask_address,
}
_COORDINATES = frozenset({"lat", "lon", "latitude", "longitude"})
MASKED_KEYS = frozenset(_MASKERS) | _COORDINATES


def mask_json(payload: Any) -> Any:
    """A copy of a JSON-able payload with every PII field (by key, at any depth) masked."""
    if isinstance(payload, dict):
        out = {}
        for key, value in payload.items():
            if isinstance(value, str) and key in _MASKERS:
                out[key] = _MASKERS[key](value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and key in _COORDINATES:
                out[key] = mask_coordinate(float(value))
            else:
                out[key] = mask_json(value)
        return out
    if isinstance(payload, list):
        return [mask_json(v) for v in payload]
    return payload
