"""Byte sizes and durations as users write them ("1.5Gi", "1m30s") and as the code uses them (int, float).

Sizes are Kubernetes quantities, exactly as `resource.Quantity` reads them: a decimal number (`1`, `1.5`,
`.5`, `2.`) with an optional suffix — binary `Ki Mi Gi Ti Pi Ei`, decimal `n u m k M G T P E`, or an exponent
`e3` / `E-2` — and a plain integer works too. A fraction of a byte is rounded up (`1500m` is 2 bytes), as
Kubernetes does for memory. Durations are Go durations, exactly as `time.ParseDuration` reads them: one or
more decimal numbers each with a unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`), such as `300ms`,
`1h2m3.5s` or `1.5m`, and `0`. A sign `+` is accepted; negative values are refused (no field takes one).
The CRD's schema checks the same syntax (`QUANTITY_PATTERN`, `DURATION_PATTERN`) so the API server refuses
what the agent would; each field's bounds are checked on the parsed value.

The formatters are the inverse, used for defaults in the generated CRD and docs: sizes as the shortest
exact binary quantity ("16Mi"), durations in Go's syntax ("1m30s", "200ms", "0s").
"""

from __future__ import annotations

import fractions
import math
import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": fractions.Fraction(1, 10**9),
    "u": fractions.Fraction(1, 10**6),
    "m": fractions.Fraction(1, 1000),
    "": fractions.Fraction(1),
    "k": fractions.Fraction(10**3),
    "M": fractions.Fraction(10**6),
    "G": fractions.Fraction(10**9),
    "T": fractions.Fraction(10**12),
    "P": fractions.Fraction(10**15),
    "E": fractions.Fraction(10**18),
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY_RE = re.compile(
    rf"^\+?(?P<number>{_NUMBER})(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))$"
)
#: The Kubernetes quantity syntax as `resource.ParseQuantity` reads it (whole exponents), without a minus
#: sign (no size is negative).
QUANTITY_PATTERN = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?[0-9]+))?$"
#: Exponents beyond this are refused before computing (1e999999 would be a very large integer).
_MAX_EXPONENT = 30

_DURATION_UNITS = {
    "ns": fractions.Fraction(1, 10**9),
    "us": fractions.Fraction(1, 10**6),
    "µs": fractions.Fraction(1, 10**6),  # U+00B5 MICRO SIGN, as Go accepts
    "μs": fractions.Fraction(1, 10**6),  # U+03BC GREEK SMALL LETTER MU, as Go accepts
    "ms": fractions.Fraction(1, 1000),
    "s": fractions.Fraction(1),
    "m": fractions.Fraction(60),
    "h": fractions.Fraction(3600),
}
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")
#: Go's duration syntax (`time.ParseDuration`), without a minus sign (no duration is negative).
DURATION_PATTERN = r"^\+?(0|((([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(ns|us|µs|μs|ms|s|m|h))+)$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_SIZE_EXAMPLES = "16Mi, 1.5Gi, 500Ki, 4M or 1e6"
_DURATION_EXAMPLES = "300ms, 5s, 1m30s or 1h"


def _decimal(number: str) -> fractions.Fraction:
    whole, _, fraction = number.partition(".")
    digits = fraction.rstrip("0")
    return fractions.Fraction(int(whole or "0")) + fractions.Fraction(int(digits or "0"), 10 ** len(digits))


def quantity(text: str) -> fractions.Fraction:
    """The exact value of a Kubernetes quantity (ValueError when `text` is not one, or is negative)."""
    if text.startswith("-"):
        raise ValueError(f"{text!r} is negative: a size cannot be")
    match = _QUANTITY_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a byte size: use an integer or a quantity like {_SIZE_EXAMPLES}")
    number = _decimal(match["number"])
    if match["binary"]:
        return number * _BINARY[match["binary"]]
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(
                f"{text!r} is out of range: exponents go from -{_MAX_EXPONENT} to {_MAX_EXPONENT}"
            )
        return number * fractions.Fraction(10) ** exponent
    return number * _DECIMAL[match["decimal"]]


def parse_bytes(value: object) -> object:
    """An int, or a quantity string such as "16Mi" or "1.5Gi", as a whole number of bytes (rounded up);
    other values pass on for the model's type checks."""
    if isinstance(value, str):
        return math.ceil(quantity(value))
    return value


def format_bytes(value: int) -> str | int:
    """The shortest exact binary quantity for `value` ("16Mi"), or the int when none is exact."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return value


def parse_duration(value: object) -> object:
    """A Go duration string ("300ms", "1h2m3.5s", "0") as float seconds. A bare number is refused (which
    unit would it be?), as the CRD's schema refuses it. Already-parsed floats from code pass through."""
    if isinstance(value, bool | int):
        raise ValueError(f"{value!r} has no unit: write it like {_DURATION_EXAMPLES}")
    if isinstance(value, str):
        return float(duration(value))
    return value


def duration(text: str) -> fractions.Fraction:
    """The exact number of seconds of a Go duration (ValueError when `text` is not one, or is negative)."""
    if text.startswith("-"):
        raise ValueError(f"{text!r} is negative: a duration cannot be")
    if not _DURATION_RE.match(text):
        raise ValueError(
            f"{text!r} is not a duration: use numbers with units (ns, us, ms, s, m, h), "
            f"like {_DURATION_EXAMPLES}"
        )
    return sum(
        (_decimal(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text)),
        fractions.Fraction(0),
    )


def format_duration(seconds: float) -> str:
    """`seconds` as a Go duration, to the nanosecond: "0s", "200ms", "1.5s", "1m30s", "2h" (Go's own
    `String()` with the zero minutes and seconds of whole hours or minutes left out)."""
    nanos = round(seconds * 10**9)
    if nanos == 0:
        return "0s"
    if nanos < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if nanos >= size:
                return f"{_fraction(nanos, size)}{unit}"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    parts = [(hours, "h"), (minutes, "m")]
    text = "".join(f"{count}{unit}" for count, unit in parts if count)
    return text + (f"{_fraction(rest, 10**9)}s" if rest else "")


def _fraction(value: int, unit: int) -> str:
    """`value / unit` in decimal without trailing zeros ("1.5", "90", "0")."""
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"
