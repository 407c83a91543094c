"""Rolling model state in Redis, behind the same StateStore interface as the in-memory store.

Stages and the voting agent keep working on live objects; ``checkpoint`` writes every touched
key as one sealed blob (see models.sealed) inside a single MULTI/EXEC transaction, so a
checkpoint is all or nothing. Keys are namespaced by pipeline name:
``quorum:<pipeline>:state:<owner>/<symbol>``.

Checkpoints are fenced: a hash ``quorum:<pipeline>:versions`` holds each key's version, and a
checkpoint (under WATCH) only writes when every version is still the one this store loaded or
last wrote. A worker that lost its partitions without noticing (a stall longer than its session)
therefore cannot overwrite the state its successor has saved since: its checkpoint raises
:class:`StateFencedError` instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from models.sealed import SealedHeader, StateIntegrityError, StateSealer

MetaFn = Callable[[str, Any], dict[str, Any]]


class StateFencedError(RuntimeError):
    """Another writer saved some of these keys since we loaded them: our live state is stale."""

    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        super().__init__(f"state written by another worker since we loaded it: {shown}")
        self.keys = keys


@dataclass(frozen=True)
class CheckpointStats:
    keys: int
    bytes: int
    elapsed_ms: float


def redis_client(url: str) -> redis.Redis:
    """A client from a URL: AUTH (``redis://:pw@host``), TLS (``rediss://``), DB (``/0``)."""
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)


class RedisStateStore:
    def __init__(
        self, client: redis.Redis, sealer: StateSealer, *, meta: MetaFn | None = None
    ) -> None:
        self.client = client
        self.sealer = sealer
        self.prefix = f"quorum:{sealer.pipeline}:state:"
        self.versions_key = f"quorum:{sealer.pipeline}:versions"
        self.writer = uuid.uuid4().hex[:12]  # tells our own earlier writes from others'
        self._meta = meta or (lambda key, value: {})
        self._live: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._dirty: set[str] = set()

    # --- StateStore ------------------------------------------------------------------------

    def get(self, key: str) -> Any | None:
        """The live object, else the checkpointed one (verified before it is unpickled)."""
        if key in self._live:
            return self._live[key]
        blob = self.client.get(self.prefix + key)
        if blob is None:
            self._versions[key] = 0  # absent: a checkpoint expects nobody to create it first
            return None
        head, value = self.sealer.open(key, bytes(blob))  # type: ignore[arg-type]
        self._live[key] = value
        self._versions[key] = head.version
        return value

    def put(self, key: str, value: Any) -> None:
        self._live[key] = value
        self._dirty.add(key)

    def keys(self) -> list[str]:
        stored = {k.decode()[len(self.prefix) :] for k in self._scan()}
        return sorted(stored | set(self._live))

    # --- checkpoints -------------------------------------------------------------------------

    def touch(self, key: str) -> None:
        """Mark a live object changed (objects mutate in place, so the store cannot see it)."""
        self._dirty.add(key)

    def touch_all(self) -> None:
        self._dirty.update(self._live)

    def checkpoint(self, extra_meta: dict[str, Any] | None = None) -> CheckpointStats:
        """Write every changed key, sealed, in one fenced transaction; bump each key's version.

        Raises :class:`StateFencedError` (nothing written) when another writer got there first.
        """
        t0 = time.perf_counter()
        keys = sorted(self._dirty)
        if not keys:
            return CheckpointStats(0, 0, 0.0)
        while True:  # WATCH covers the whole hash: other workers' checkpoints retry us
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(self.versions_key)  # type: ignore[no-untyped-call]
                    stored = pipe.hmget(self.versions_key, keys)
                    bases = [self._base(k, v) for k, v in zip(keys, stored, strict=True)]
                    stale = [k for k, base in zip(keys, bases, strict=True) if base is None]
                    if stale:
                        raise StateFencedError(stale)
                    versions = {
                        k: base + 1 for k, base in zip(keys, bases, strict=True) if base is not None
                    }
                    blobs = {
                        k: self.sealer.seal(
                            k,
                            self._live[k],
                            versions[k],
                            {**self._meta(k, self._live[k]), **(extra_meta or {})},
                        )
                        for k in keys
                    }
                    pipe.multi()
                    for key, blob in blobs.items():
                        pipe.set(self.prefix + key, blob)
                    pipe.hset(
                        self.versions_key,
                        mapping={k: f"{v}/{self.writer}" for k, v in versions.items()},
                    )
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        self._versions.update(versions)
        self._dirty.clear()
        total = sum(len(b) for b in blobs.values())
        return CheckpointStats(len(keys), total, (time.perf_counter() - t0) * 1e3)

    def _base(self, key: str, stored: bytes | str | None) -> int | None:
        """The version to build on, or None when someone else wrote ``key`` since we read it.

        Our own writer id in the hash means the last write was ours, even one whose reply was
        lost (Redis went away after EXEC): that is not a reason to fence ourselves off.
        """
        expected = self._versions.get(key, 0)
        if stored is None:
            return expected
        text = stored.decode() if isinstance(stored, bytes) else stored
        version, _, writer = text.partition("/")
        if writer == self.writer:
            return int(version)
        return expected if int(version) == expected else None

    # --- inspection (quorum state ...) --------------------------------------------------------

    def _scan(self) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=self.prefix + "*", count=500)

    def headers(self) -> list[tuple[str, SealedHeader | StateIntegrityError, int]]:
        """Every stored key with its verified header (or why it was refused) and its size."""
        out: list[tuple[str, SealedHeader | StateIntegrityError, int]] = []
        for rkey in sorted(self._scan()):
            key = rkey.decode()[len(self.prefix) :]
            blob = self.client.get(rkey)
            if blob is None:
                continue
            data = bytes(blob)  # type: ignore[arg-type]
            try:
                out.append((key, self.sealer.header(key, data), len(data)))
            except StateIntegrityError as e:
                out.append((key, e, len(data)))
        return out

    def forget(self) -> None:
        """Drop live objects (after a rebalance); the next get reloads the saved state."""
        self._live.clear()
        self._dirty.clear()

    def delete(self, keys: list[str]) -> int:
        for key in keys:
            self._live.pop(key, None)
            self._dirty.discard(key)
            self._versions.pop(key, None)
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*(self.prefix + k for k in keys))
        pipe.hdel(self.versions_key, *keys)
        deleted, _ = pipe.execute()
        return int(deleted)
