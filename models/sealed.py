"""Sealed state blobs: versioned, bound to a pipeline and key, signed with HMAC-SHA256.

Model state is pickled, and unpickling runs code. A blob is therefore only unpickled after its
signature (over header and payload, with the configured secret) verifies, its format version is
known, and it names this pipeline and this key: a blob copied from another pipeline or key, or
edited by hand in Redis, is refused with a clear error and never executed.

Layout: ``MAGIC | u32 header length | header JSON | payload | 32-byte HMAC``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from models.state import dumps_state, loads_state

MAGIC = b"QSTATE"
FORMAT_VERSION = 1
_SIG = 32
_LEN = struct.Struct(">I")


class StateIntegrityError(ValueError):
    """A state blob that must not be loaded; the message says which and why."""


@dataclass(frozen=True)
class SealedHeader:
    format: int
    pipeline: str
    key: str
    version: int  # checkpoint counter of this key: +1 per write
    meta: dict[str, Any]  # position, examples learned, model id: what `quorum state ls` shows


class StateSealer:
    def __init__(self, secret: bytes, pipeline: str) -> None:
        if len(secret) < 16:
            raise ValueError("the state signing secret must be at least 16 bytes")
        self._secret = secret
        self.pipeline = pipeline

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def seal(self, key: str, value: Any, version: int, meta: dict[str, Any] | None = None) -> bytes:
        header = orjson.dumps(
            {
                "format": FORMAT_VERSION,
                "pipeline": self.pipeline,
                "key": key,
                "version": version,
                "meta": meta or {},
            }
        )
        body = MAGIC + _LEN.pack(len(header)) + header + dumps_state(value)
        return body + self._sign(body)

    def with_version(self, key: str, blob: bytes, version: int) -> bytes:
        """The same sealed state under another version number (re-signed; nothing unpickled):
        for a checkpoint that learns, while writing, that its last write did land after all."""
        head, payload = self._verify(key, blob)
        header = orjson.dumps(
            {
                "format": head.format,
                "pipeline": head.pipeline,
                "key": head.key,
                "version": version,
                "meta": head.meta,
            }
        )
        body = MAGIC + _LEN.pack(len(header)) + header + payload
        return body + self._sign(body)

    def header(self, key: str, blob: bytes) -> SealedHeader:
        """Verify ``blob`` completely and return its header (nothing is unpickled)."""
        return self._verify(key, blob)[0]

    def open(self, key: str, blob: bytes) -> tuple[SealedHeader, Any]:
        """Verify, then unpickle: the only way state is ever loaded."""
        head, payload = self._verify(key, blob)
        return head, loads_state(payload)

    def _verify(self, key: str, blob: bytes) -> tuple[SealedHeader, bytes]:
        if len(blob) < len(MAGIC) + _LEN.size + _SIG or not blob.startswith(MAGIC):
            raise StateIntegrityError(f"{key}: not a quorum state blob")
        body, sig = blob[:-_SIG], blob[-_SIG:]
        if not hmac.compare_digest(sig, self._sign(body)):
            raise StateIntegrityError(
                f"{key}: bad signature (tampered, or signed with another secret); refused"
            )
        (n,) = _LEN.unpack_from(body, len(MAGIC))
        start = len(MAGIC) + _LEN.size
        try:
            raw = orjson.loads(body[start : start + n])
            head = SealedHeader(
                int(raw["format"]),
                str(raw["pipeline"]),
                str(raw["key"]),
                int(raw["version"]),
                dict(raw["meta"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise StateIntegrityError(f"{key}: unreadable header: {e}") from None
        if head.format != FORMAT_VERSION:
            raise StateIntegrityError(
                f"{key}: unknown state format version {head.format} (this build reads "
                f"{FORMAT_VERSION}); refused"
            )
        if head.pipeline != self.pipeline:
            raise StateIntegrityError(
                f"{key}: belongs to pipeline {head.pipeline!r}, not {self.pipeline!r}; refused"
            )
        if head.key != key:
            raise StateIntegrityError(f"{key}: blob was written for key {head.key!r}; refused")
        return head, body[start + n :]
