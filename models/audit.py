"""A tamper-evident audit log: append-only records, each carrying the hash of the one before.

Every record is ``{"index": i, "prev": <hash of record i-1>, "kind": ..., ...fields, "hash":
<sha256 of the record without its hash>}``, hashed over its canonical JSON (sorted keys, orjson).
Changing a byte of a record breaks its hash; deleting, inserting or reordering records breaks
the indices and the links. A rewrite that recomputes every hash after an edit is caught only
against a head kept elsewhere (the run's ``report.json``, or Redis for the Kafka drivers):
:func:`verify` takes it.

Pure logic: the caller writes the lines (one JSON object each) wherever they go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64  # the ``prev`` of record 0
_RESERVED = ("index", "prev", "hash")


def record_hash(record: dict[str, Any]) -> str:
    """The sha256 (hex) of ``record`` without its ``hash`` field, over sorted-key JSON."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AuditChain:
    """Makes the records of one log, in order; ``head`` is the last record's hash."""

    def __init__(self, head: str = GENESIS, next_index: int = 0) -> None:
        self.head = head
        self.next_index = next_index

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next record (a dict ready to serialise): ``kind`` and ``fields``, linked."""
        for k in _RESERVED:
            if k in fields:
                raise ValueError(f"{k!r} is set by the chain, not by a record")
        rec: dict[str, Any] = {"index": self.next_index, "prev": self.head, "kind": kind, **fields}
        rec["hash"] = record_hash(rec)
        self.head = rec["hash"]
        self.next_index += 1
        return rec

    @staticmethod
    def line(record: dict[str, Any]) -> bytes:
        """One line of an ``audit.jsonl`` (sorted keys: the bytes are the same every run)."""
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int  # records read (all of them when ok)
    head: str  # the last good record's hash
    bad_index: int | None = None  # the first bad record's position in the file (0-based)
    reason: str = ""


def verify(lines: Iterable[bytes | str], head: str | None = None) -> Verdict:
    """Check a log line by line; the first bad record's index and why. With ``head``, the last
    record's hash must equal it (catches a truncated log, or one rewritten whole)."""
    prev, n = GENESIS, 0
    for i, raw in enumerate(lines):
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return Verdict(False, i, prev, i, f"record {i} is not JSON: {e}")
        if not isinstance(rec, dict):
            return Verdict(False, i, prev, i, f"record {i} is not a JSON object")
        if rec.get("index") != i:
            return Verdict(
                False,
                i,
                prev,
                i,
                f"record {i} says index {rec.get('index')!r}: "
                "a record was deleted, inserted or moved here",
            )
        if rec.get("prev") != prev:
            return Verdict(False, i, prev, i, f"record {i} does not link to record {i - 1}")
        if rec.get("hash") != record_hash(rec):
            return Verdict(False, i, prev, i, f"record {i} was changed (its hash does not match)")
        prev, n = rec["hash"], i + 1
    if head is not None and prev != head:
        return Verdict(
            False,
            n,
            prev,
            n,
            f"the log ends at record {n - 1} with head {prev[:12]}…, not the expected "
            f"{head[:12]}…: records were cut off the end, or the whole log was rewritten",
        )
    return Verdict(True, n, prev)
