"""Event-time parsing: integer nanoseconds since the Unix epoch, or ISO-8601 with an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)(?:[.,](\d+))?(.*)$")


def parse_time_ns(text: str) -> int:
    """Parse ``text`` into integer nanoseconds (UTC).

    ASCII digits are taken as nanoseconds already (no sign, no ``_``, no other scripts' digits,
    which ``int`` would quietly accept). ISO-8601 must carry an offset (``Z`` or ``+hh:mm``)
    because a naive local time is ambiguous; fractions are kept to the nanosecond. The range is
    not checked here (``streams.validation`` does it), so ``--start``/``--end`` parse freely.

    >>> parse_time_ns("1970-01-01T00:00:01.000000002Z")
    1000000002
    >>> parse_time_ns("1723161600000000000")
    1723161600000000000
    """
    s = text.strip()
    if not s.isascii():
        raise ValueError(f"not a timestamp (ns integer or ISO-8601 with offset): {text!r}")
    if s.isdigit():
        if len(s) > 30:  # far out of range anyway; spares int() its 4300-digit error
            raise ValueError(f"timestamp has {len(s)} digits: {text[:40]!r}...")
        return int(s)
    m = _FRACTION.match(s)
    if m is None:
        raise ValueError(f"not a timestamp (ns integer or ISO-8601 with offset): {text!r}")
    head, frac, tail = m.group(1), m.group(2) or "", m.group(3)
    try:
        dt = datetime.fromisoformat(head + tail)
    except ValueError:
        raise ValueError(
            f"not a timestamp (ns integer or ISO-8601 with offset): {text!r}"
        ) from None
    if dt.tzinfo is None:
        raise ValueError(f"ISO-8601 time without a UTC offset is ambiguous: {text!r}")
    delta = dt - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds * 1_000_000_000 + nanos


def format_time_ns(ns: int) -> str:
    """Render nanoseconds as ISO-8601 UTC with millisecond precision, for humans."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")
