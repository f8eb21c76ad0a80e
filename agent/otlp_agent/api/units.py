"""Byte sizes and durations as users write them ("16Mi", "200ms") and as the code uses them (int, float).

Kubernetes users write sizes as quantities and Go users write durations as "5s"; both are accepted so a
pipeline reads like the rest of a cluster's manifests. The formatters are the inverse, used for defaults
in the generated CRD and docs.
"""

from __future__ import annotations

import re

_BYTE_SUFFIXES = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_BYTES_RE = re.compile(r"^\s*(\d+)\s*(Ki|Mi|Gi|Ti|k|M|G|)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def parse_bytes(value: object) -> object:
    """An int, or a quantity string such as "16Mi" or "4M", as a number of bytes (other values pass on)."""
    if isinstance(value, str):
        match = _BYTES_RE.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a byte size: use an integer or a quantity like 16Mi, 512Ki, 4M"
            )
        return int(match.group(1)) * _BYTE_SUFFIXES[match.group(2)]
    return value


def format_bytes(value: int) -> str | int:
    """The shortest exact binary quantity for `value` ("16Mi"), or the int when none is exact."""
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        unit = _BYTE_SUFFIXES[suffix]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return value


def parse_duration(value: object) -> object:
    """A duration string ("200ms", "5s", "1.5m", "1h") as float seconds; a bare number is refused (which
    unit would it be?), as the CRD's schema refuses it. Already-parsed floats from code pass through."""
    if isinstance(value, bool | int):
        raise ValueError(f"{value!r} has no unit: write it like 200ms, 5s, 1m or 1h")
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: use a number with a unit, like 200ms, 5s, 1m, 1h")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def format_duration(seconds: float) -> str:
    """The duration string a user would write for `seconds` ("200ms", "5s", "2m")."""
    millis = round(seconds * 1000)
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % factor == 0:
            return f"{millis // factor}{unit}"
    return f"{millis}ms"
