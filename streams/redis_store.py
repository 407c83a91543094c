"""Rolling model state in Redis, behind the same StateStore interface as the in-memory store.

Stages and the voting agent keep working on live objects; ``checkpoint`` writes every touched
key as one sealed blob (see models.sealed) inside MULTI/EXEC transactions, one per input
partition, so each partition's state is saved all or nothing.

Keys carry a Redis Cluster hash tag per pipeline and input partition,
``quorum:{<pipeline>:p<partition>}:state:<owner>/<symbol>``, so every key of one partition's
checkpoint (and its versions hash) lives in one hash slot: the same code runs on one Redis or on
a cluster, where partitions spread over the nodes. The driver says which partition a key
belongs to (:attr:`RedisStateStore.partition`, set before it applies an input); a store used
without partitions (the embedded pipeline, tools) keeps its keys under ``{<pipeline>}``.
A symbol lives on one partition, so changing a topic's partition count needs a state reset.

Checkpoints are fenced: a hash ``quorum:{<pipeline>:p<N>}:versions`` holds each key's version,
and a checkpoint (under WATCH) only writes when every version is still the one this store loaded
or last wrote. A worker that lost its partitions without noticing (a stall longer than its
session) therefore cannot overwrite the state its successor has saved since: its checkpoint
raises :class:`StateFencedError` instead.

A checkpoint has two halves so the worker can keep its event loop free: :meth:`prepare`
(pickle and seal a consistent snapshot, while inputs are paused) and :meth:`commit` (the Redis
round trips, safe to run in a thread while the live objects change again).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from models.sealed import SealedHeader, StateIntegrityError, StateSealer

MetaFn = Callable[[str, Any], dict[str, Any]]

#: Header fields that belong to the driver, not the domain state: kept when a key reloads.
DRIVER_META = frozenset({"position"})


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


@dataclass
class PreparedCheckpoint:
    """A sealed snapshot waiting to be written: blobs and new versions per hash slot."""

    slots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # tag -> key -> blob
    bases: dict[str, dict[str, int]] = field(default_factory=dict)  # tag -> key -> version
    written: dict[str, dict[str, int]] = field(default_factory=dict)  # after the commit
    seal_ms: float = 0.0

    @property
    def keys(self) -> int:
        return sum(len(b) for b in self.slots.values())

    @property
    def bytes(self) -> int:
        return sum(len(blob) for b in self.slots.values() for blob in b.values())


def redis_client(url: str) -> redis.Redis:
    """A client from a URL: AUTH (``redis://:pw@host``), TLS (``rediss://``), DB (``/0``)."""
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStateStore:
    def __init__(
        self, client: redis.Redis, sealer: StateSealer, *, meta: MetaFn | None = None
    ) -> None:
        self.client = client
        self.sealer = sealer
        self.pipeline = sealer.pipeline
        self.writer = uuid.uuid4().hex[:12]  # tells our own earlier writes from others'
        self._meta = meta or (lambda key, value: {})
        #: the input partition being applied: new keys go to its hash slot (None: no partition)
        self.partition: int | None = None
        self._live: dict[str, Any] = {}
        self._tag: dict[str, str] = {}  # key -> hash tag of the slot it lives in
        self._versions: dict[str, int] = {}
        self._loaded_meta: dict[str, dict[str, Any]] = {}
        self._driver_meta: dict[str, dict[str, Any]] = {}  # kept across checkpoints
        self._dirty: set[str] = set()

    # --- key layout ---------------------------------------------------------------------------

    def tag(self, partition: int | None) -> str:
        """The hash tag of a partition's keys (braces included)."""
        return f"{{{self.pipeline}}}" if partition is None else f"{{{self.pipeline}:p{partition}}}"

    def redis_key(self, key: str, tag: str | None = None) -> str:
        return f"quorum:{tag or self._tag_of(key)}:state:{key}"

    def versions_key(self, tag: str) -> str:
        return f"quorum:{tag}:versions"

    def _tag_of(self, key: str) -> str:
        tag = self._tag.get(key)
        if tag is None:
            tag = self.tag(self.partition)
            self._tag[key] = tag
        return tag

    def _pattern(self, partition: int | None = None, *, every: bool = False) -> str:
        pipe = _glob_escape(self.pipeline)
        if every:  # {pipe} and {pipe:pN}: the next character is '}' or ':'
            return f"quorum:{{{pipe}[}}:]*state:*"
        return f"quorum:{_glob_escape(self.tag(partition))}:state:*"

    def _split(self, rkey: bytes | str) -> tuple[str, str]:
        text = rkey.decode() if isinstance(rkey, bytes) else rkey
        tag_end = text.index("}:state:") + 1
        return text[len("quorum:") : tag_end], text[tag_end + len(":state:") :]

    # --- StateStore ------------------------------------------------------------------------

    def get(self, key: str) -> Any | None:
        """The live object, else the checkpointed one (verified before it is unpickled)."""
        if key in self._live:
            return self._live[key]
        blob = self.client.get(self.redis_key(key))
        if blob is None:
            self._versions[key] = 0  # absent: a checkpoint expects nobody to create it first
            return None
        head, value = self.sealer.open(key, bytes(blob))  # type: ignore[arg-type]
        self._live[key] = value
        self._versions[key] = head.version
        self._loaded_meta[key] = head.meta
        kept = {k: v for k, v in head.meta.items() if k in DRIVER_META}
        if kept:
            self._driver_meta[key] = kept
        return value

    def put(self, key: str, value: Any) -> None:
        self._tag_of(key)
        self._live[key] = value
        self._dirty.add(key)

    def keys(self) -> list[str]:
        stored = {self._split(k)[1] for k in self._scan()}
        return sorted(stored | set(self._live))

    def loaded_meta(self, key: str) -> dict[str, Any]:
        """The header meta of ``key`` as loaded from Redis ({} when it was new): a driver keeps
        its input positions there, beside the domain state."""
        return self._loaded_meta.get(key, {})

    def set_meta(self, key: str, meta: dict[str, Any]) -> None:
        """Driver metadata to save with ``key`` at every later checkpoint (e.g. its position);
        its names must be in :data:`DRIVER_META` so a reload carries them over."""
        self._driver_meta[key] = meta

    # --- checkpoints -------------------------------------------------------------------------

    def touch(self, key: str) -> None:
        """Mark a live object changed (objects mutate in place, so the store cannot see it)."""
        self._dirty.add(key)

    def touch_all(self) -> None:
        self._dirty.update(self._live)

    def prepare(self) -> PreparedCheckpoint:
        """Seal every changed key as it is now (call with inputs paused); nothing is written."""
        t0 = time.perf_counter()
        prepared = PreparedCheckpoint()
        for key in sorted(self._dirty):
            value = self._live[key]
            tag = self._tag_of(key)
            base = self._versions.get(key, 0)
            meta = {**self._meta(key, value), **self._driver_meta.get(key, {})}
            prepared.slots.setdefault(tag, {})[key] = self.sealer.seal(key, value, base + 1, meta)
            prepared.bases.setdefault(tag, {})[key] = base
        self._dirty.clear()
        prepared.seal_ms = (time.perf_counter() - t0) * 1e3
        return prepared

    def commit(self, prepared: PreparedCheckpoint) -> CheckpointStats:
        """Write a prepared snapshot, one fenced transaction per hash slot.

        Every slot is checked first, then each is written under WATCH: a worker fenced on any
        slot writes none (:class:`StateFencedError`), and a writer that got to a slot between
        the check and the write is caught by that slot's WATCH. Touches no live object, so it
        may run in a thread; call :meth:`committed` after it, on the owner's thread.
        """
        t0 = time.perf_counter()
        stale: list[str] = []
        for tag, blobs in prepared.slots.items():
            stale += self._stale(tag, list(blobs), prepared.bases[tag])
        if stale:
            raise StateFencedError(stale)
        for tag, blobs in prepared.slots.items():
            prepared.written[tag] = self._commit_slot(tag, blobs, prepared.bases[tag])
        return CheckpointStats(
            prepared.keys, prepared.bytes, prepared.seal_ms + (time.perf_counter() - t0) * 1e3
        )

    def committed(self, prepared: PreparedCheckpoint) -> None:
        """Record the versions a successful :meth:`commit` wrote."""
        for versions in prepared.written.values():
            self._versions.update(versions)

    def failed(self, prepared: PreparedCheckpoint) -> None:
        """A commit did not complete: its keys are written again by the next checkpoint."""
        for blobs in prepared.slots.values():
            self._dirty.update(k for k in blobs if k in self._live)

    def checkpoint(self) -> CheckpointStats:
        """Prepare and commit in one call (tools, tests and the embedded pipeline)."""
        prepared = self.prepare()
        try:
            stats = self.commit(prepared)
        except BaseException:
            self.failed(prepared)
            raise
        self.committed(prepared)
        return stats

    def _stale(self, tag: str, keys: list[str], bases: dict[str, int]) -> list[str]:
        stored = self.client.hmget(self.versions_key(tag), keys)
        return [k for k, v in zip(keys, stored, strict=True) if self._next(bases[k], v) is None]

    def _commit_slot(
        self, tag: str, blobs: dict[str, bytes], bases: dict[str, int]
    ) -> dict[str, int]:
        keys = list(blobs)
        versions_key = self.versions_key(tag)
        while True:  # WATCH covers the slot's versions hash: a concurrent writer retries us
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(versions_key)  # type: ignore[no-untyped-call]
                    stored = pipe.hmget(versions_key, keys)
                    nexts = {k: self._next(bases[k], v) for k, v in zip(keys, stored, strict=True)}
                    stale = [k for k, v in nexts.items() if v is None]
                    if stale:
                        raise StateFencedError(stale)
                    versions = {k: v for k, v in nexts.items() if v is not None}
                    pipe.multi()
                    for key, blob in blobs.items():
                        version = versions[key]
                        if version != bases[key] + 1:  # our last write landed after all
                            blob = self.sealer.with_version(key, blob, version)
                        pipe.set(self.redis_key(key, tag), blob)
                    pipe.hset(
                        versions_key,
                        mapping={k: f"{v}/{self.writer}" for k, v in versions.items()},
                    )
                    pipe.execute()
                    return versions
                except redis.WatchError:
                    continue

    def _next(self, base: int, stored: bytes | str | None) -> int | None:
        """The version to write over ``base``, or None when someone else wrote the key since
        we read it (we are fenced off).

        Our own writer id in the hash means the last write was ours, even one whose reply was
        lost (Redis went away after EXEC): that is not a reason to fence ourselves off, and we
        build on it. A key without a version is new (or was reset): ours to write.
        """
        if stored is None:
            return base + 1
        text = stored.decode() if isinstance(stored, bytes) else stored
        version, _, writer = text.partition("/")
        if writer == self.writer:
            return int(version) + 1
        return base + 1 if int(version) == base else None

    # --- inspection (quorum state ...) --------------------------------------------------------

    def _scan(self, partition: int | None = None, *, every: bool = True) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=self._pattern(partition, every=every), count=500)

    def headers(
        self, partitions: list[int] | None = None
    ) -> list[tuple[str, SealedHeader | StateIntegrityError, int]]:
        """Stored keys with their verified header (or why it was refused) and size: every key
        of the pipeline, or those of the given input ``partitions``. Learns where each lives."""
        rkeys: list[bytes] = []
        if partitions is None:
            rkeys = list(self._scan())
        else:
            for p in partitions:
                rkeys.extend(self._scan(p, every=False))
        out: list[tuple[str, SealedHeader | StateIntegrityError, int]] = []
        for rkey in sorted(rkeys):
            tag, key = self._split(rkey)
            blob = self.client.get(rkey)
            if blob is None:
                continue
            self._tag.setdefault(key, tag)
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
        self._loaded_meta.clear()
        self._driver_meta.clear()
        self._tag.clear()

    def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        if any(k not in self._tag for k in keys):
            self.headers()  # learn where they live
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            tag = self._tag_of(key)
            pipe.delete(self.redis_key(key, tag))
            pipe.hdel(self.versions_key(tag), key)
        replies = pipe.execute()
        for key in keys:
            self._live.pop(key, None)
            self._dirty.discard(key)
            self._versions.pop(key, None)
            self._loaded_meta.pop(key, None)
            self._driver_meta.pop(key, None)
        return int(sum(replies[0::2]))
