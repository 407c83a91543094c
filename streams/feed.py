"""A live market-data feed: keeps a venue's websocket healthy for days, makes ticks.

One :class:`Feed` per venue connection set, the venue's frames read by its adapter
(:class:`BinanceVenue`, :class:`CoinbaseVenue`). What it does for every venue:

- **reconnects** with capped exponential backoff and full jitter (then resubscribes), and a
  **stale-feed watchdog** (no frame for ``stale_s`` → reconnect);
- **rotates** the connection before the venue's limit (Binance: 24 h) by opening a second one
  and closing the first once the second has data: the overlap is de-duplicated by trade and
  update ids, so a rotation loses and repeats nothing; a server-shutdown event rotates at once;
- sends at most ``max_out_per_s`` messages a second (Binance disconnects above 5);
- measures the **clock offset** (exchange − receive time, :class:`~streams.feed_clock.ClockOffset`)
  and stamps quotes without an exchange time with receive time + offset — the file reader's
  rule, and the offset is written into the recording so a replay stamps the same;
- **reorders** by event time within ``reorder_ms`` (the reader's rule), so the ticks equal those
  of ``quorum backtest`` on the recording;
- **dead-letters** bad frames with their raw bytes and a reason, counts **gaps** and repeats,
  and reports its health as status records (:meth:`FeedStats.status`).

Frames are recorded (``--record``) before they are parsed, exactly as received.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from models.records import Quote, Reject, Tick, Trade
from streams import binance, coinbase
from streams.feed_clock import ClockOffset, Reorder
from streams.validation import InvalidTick

log = logging.getLogger("quorum.feed")

NS = 1_000_000_000


def backoff_s(attempt: int, base_s: float, cap_s: float, u: float) -> float:
    """The wait before reconnect ``attempt`` (0 after a connection that had data): base × 2^n,
    capped, times a jitter in [0.5, 1) from ``u`` in [0, 1) — "equal jitter", so many clients
    cut off together do not come back together, and none waits less than half its step."""
    step: float = base_s * 2.0 ** min(attempt, 30)
    return min(cap_s, step) * (0.5 + 0.5 * u)


class FrameError(ValueError):
    """A frame that cannot be used: dead-lettered with its raw bytes and this reason."""


@dataclass(slots=True)
class Parsed:
    """What one frame gave: ticks (each with whether it needs the clock offset), exchange-time
    samples for the offset, and what else the frame was."""

    ticks: list[tuple[Tick, bool]] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)  # exchange ns of its trades
    data: bool = False  # a market-data frame (a connection is healthy once it has one)
    shutdown: bool = False  # the venue announced it will close this connection
    duplicates: int = 0
    gaps: list[str] = field(default_factory=list)
    missing: int = 0
    error: str | None = None  # a venue error message (logged, not dead-lettered)


class Venue(Protocol):
    name: str
    url: str  # the public endpoint
    rotate_s: float | None  # the venue's connection limit, with a margin (None: none)
    pings: bool  # whether we send keepalive pings (Binance counts them as messages)

    def connect_url(self, base: str, symbols: Sequence[str]) -> str: ...
    def subscribe(self, symbols: Sequence[str]) -> list[bytes]: ...
    def on_connect(self) -> None: ...
    def parse(self, raw: bytes, recv_ns: int) -> Parsed: ...


class BinanceVenue:
    """Binance spot: combined ``@trade`` and ``@bookTicker`` streams named in the URL."""

    name = "binance"
    url = binance.URL
    rotate_s: float | None = 23.5 * 3600
    pings = False  # the server pings every 20 s and the library pongs; our pings cost quota

    def __init__(self) -> None:
        self.ids = binance.Ids()
        self._gaps = 0

    def connect_url(self, base: str, symbols: Sequence[str]) -> str:
        return binance.stream_url(base, symbols)

    def subscribe(self, symbols: Sequence[str]) -> list[bytes]:
        return []  # the URL subscribes

    def on_connect(self) -> None:
        pass  # trade and update ids are global: repeats across connections are still repeats

    def parse(self, raw: bytes, recv_ns: int) -> Parsed:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise FrameError(f"malformed JSON: {e}") from None
        if not isinstance(frame, dict):
            raise FrameError("frame is not a JSON object")
        out = Parsed()
        data = frame.get("data")
        event = data.get("e") if isinstance(data, dict) else frame.get("e")
        if event == "serverShutdown":
            out.shutdown = True
            return out
        stream = frame.get("stream")
        if stream is None:
            if "result" in frame or "id" in frame:
                return out  # a subscription answer
            if "code" in frame or "msg" in frame:
                out.error = str(frame.get("msg") or frame.get("code"))
                return out
            raise FrameError("frame has no stream")
        try:
            tick = binance.frame_tick(stream, data, recv_ns, 0)
        except KeyError as e:
            raise FrameError(f"missing field {e}") from None
        except (ValueError, TypeError, OverflowError, InvalidTick) as e:
            raise FrameError(str(e)) from None
        out.data = True
        if tick is None:
            return out
        if not self.ids.accept(tick, data):
            out.duplicates = 1
            return out
        if self.ids.gaps != self._gaps:
            self._gaps = self.ids.gaps
            gap = self.ids.last_gap
            if gap is not None:
                sym, lo, hi = gap
                out.gaps.append(f"{sym} trade ids {lo}..{hi} missing ({hi - lo + 1})")
                out.missing = hi - lo + 1
        if isinstance(tick, Trade):
            out.samples.append(tick.ts)
            out.ticks.append((tick, False))
        else:
            stamped = isinstance(data, dict) and ("T" in data or "E" in data)
            out.ticks.append((tick, not stamped))
        return out


class CoinbaseVenue:
    """Coinbase Advanced Trade: ``market_trades`` and ``ticker`` (best bid/ask), plus
    ``heartbeats`` (quiet channels close without it), one subscription per message."""

    name = "coinbase"
    url = coinbase.URL
    rotate_s: float | None = None  # no documented connection limit
    pings = True

    def __init__(self) -> None:
        self.parser = coinbase.CoinbaseParser()

    def connect_url(self, base: str, symbols: Sequence[str]) -> str:
        return base

    def subscribe(self, symbols: Sequence[str]) -> list[bytes]:
        return coinbase.subscribe_messages(symbols)

    def on_connect(self) -> None:
        self.parser.reset_sequence()  # sequence_num restarts on every connection

    def parse(self, raw: bytes, recv_ns: int) -> Parsed:
        missing = self.parser.missing_trade_ids
        try:
            f = self.parser.parse(raw, recv_ns)
        except coinbase.FrameError as e:
            raise FrameError(str(e)) from None
        out = Parsed(
            ticks=[(t, False) for t in f.ticks],  # every Coinbase tick has the venue's time
            samples=[t.ts for t in f.ticks if isinstance(t, Trade)],
            data=f.kind in ("market_trades", "ticker", "heartbeats"),
            duplicates=f.duplicates,
            gaps=list(f.gaps),
            missing=self.parser.missing_trade_ids - missing,
        )
        if f.kind == "error":
            out.error = f.message or "error"
        return out


VENUES: dict[str, Callable[[], Venue]] = {"binance": BinanceVenue, "coinbase": CoinbaseVenue}


class TickSink(Protocol):
    def tick(self, tick: Tick) -> None: ...
    def reject(self, reject: Reject) -> None: ...
    def status(self, record: dict[str, Any]) -> None: ...
    def poll(self) -> None: ...
    def flush(self) -> None: ...


class MemorySink:
    """Collects everything (tests, the terminal view)."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.rejects: list[Reject] = []
        self.statuses: list[dict[str, Any]] = []

    def tick(self, tick: Tick) -> None:
        self.ticks.append(tick)

    def reject(self, reject: Reject) -> None:
        self.rejects.append(reject)

    def status(self, record: dict[str, Any]) -> None:
        self.statuses.append(record)

    def poll(self) -> None:
        pass

    def flush(self) -> None:
        pass


class Recorder:
    """Every raw frame as ``<recv_ns> <frame>``, gzip, one file per UTC hour of receive time
    (``<venue>_<YYYYmmddHH>.gz``): the bundled sample's format, so ``quorum backtest`` reads
    it. The clock offset in use is written as a meta line where it changes and at the top of
    each file."""

    def __init__(self, directory: Path, venue: str) -> None:
        self.dir = directory
        self.venue = venue
        self.dir.mkdir(parents=True, exist_ok=True)
        self._f: gzip.GzipFile | None = None
        self._hour: int | None = None
        self.offset: int | None = None
        self.files: list[Path] = []
        self.lines = 0

    def _write(self, recv_ns: int, body: bytes) -> None:
        hour = recv_ns // (3600 * NS)
        if hour != self._hour:
            self._open(hour, recv_ns)
        assert self._f is not None
        self._f.write(b"%d %s\n" % (recv_ns, body))

    def frame(self, recv_ns: int, raw: bytes) -> None:
        self._write(recv_ns, raw)
        self.lines += 1

    def connected(self, recv_ns: int, n: int) -> None:
        """A connection opened here: per-connection state (Coinbase's ``sequence_num``)
        restarts, and a replay restarts it at the same line."""
        self._write(recv_ns, binance.connected_meta(n))

    def meta(self, recv_ns: int, offset: int) -> None:
        self.offset = offset
        if self._f is not None:
            self._f.write(b"%d %s\n" % (recv_ns, binance.offset_meta(offset)))

    def _open(self, hour: int, recv_ns: int) -> None:
        self.close()
        stamp = time.strftime("%Y%m%d%H", time.gmtime(hour * 3600))
        path = self.dir / f"{self.venue}_{stamp}.gz"
        n = 1
        while path.exists():  # never append to (or clobber) an earlier session's file
            path = self.dir / f"{self.venue}_{stamp}.{n}.gz"
            n += 1
        self._f = f = gzip.GzipFile(path, "wb", compresslevel=6)
        self._hour = hour
        self.files.append(path)
        if self.offset is not None:
            f.write(b"%d %s\n" % (recv_ns, binance.offset_meta(self.offset)))

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


@dataclass
class FeedStats:
    venue: str
    connects: int = 0
    disconnects: int = 0
    stale: int = 0
    rotations: int = 0
    shutdowns: int = 0
    frames: int = 0
    ticks: int = 0
    rejects: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing: int = 0
    late: int = 0
    errors: int = 0
    offset_ns: int | None = None
    per_symbol: Counter[str] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)  # frame to tick, since last status
    last_gap: str | None = None

    def counts(self) -> dict[str, Any]:
        """The feed's counters so far (the status record's, the live summary's, the logs')."""
        return {
            "connects": self.connects,
            "disconnects": self.disconnects,
            "stale": self.stale,
            "rotations": self.rotations,
            "shutdowns": self.shutdowns,
            "frames": self.frames,
            "ticks": self.ticks,
            "rejects": self.rejects,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "missing_ids": self.missing,
            "last_gap": self.last_gap,
            "late": self.late,
            "venue_errors": self.errors,
            "clock_offset_ns": self.offset_ns,
        }

    def summary(self) -> str:
        """The counters as one log line."""
        return ", ".join(f"{k} {v}" for k, v in self.counts().items() if v is not None)

    def status(self, wall_ns: int, elapsed_s: float, connected: int, held: int) -> dict[str, Any]:
        """The status record; rates and latencies cover the ``elapsed_s`` since the last."""
        lat = sorted(self.latencies_ns)
        self.latencies_ns.clear()

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6, 3) if lat else None

        span = max(elapsed_s, 1e-9)
        rates = {s: round(n / span, 1) for s, n in sorted(self.per_symbol.items())}
        self.per_symbol.clear()
        return {
            "type": "feed_status",
            "venue": self.venue,
            "wall_ns": wall_ns,
            "connected": connected,
            **self.counts(),
            "held": held,
            "ticks_per_s": rates,
            "frame_to_tick_ms": {"p50": q(0.5), "p99": q(0.99), "n": len(lat)},
        }


@dataclass
class FeedConfig:
    symbols: Sequence[str]
    url: str | None = None  # None: the venue's public endpoint
    stale_s: float = 10.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    reorder_ms: float = 500.0
    rotate_s: float | None = None  # None: the venue's
    max_out_per_s: int = 5
    status_s: float = 1.0
    offset_wait_s: float = 10.0  # with no trade by then, quotes go out at offset 0
    seed: int = 0  # the backoff jitter's


class _Conn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.ws: ClientConnection | None = None
        self.opened = time.monotonic()
        self.has_data = asyncio.Event()
        self.rotate = asyncio.Event()  # shutdown announced, or the age limit reached
        self.overlap = asyncio.Event()  # replaced: it delivered the successor's first frame
        self.held: list[tuple[int, bytes]] = []  # the successor's frames, while rotating
        self.task: asyncio.Task[None] | None = None


class Feed:
    """Run ``venue``'s feed into ``sink`` until ``stop`` is set."""

    def __init__(
        self,
        venue: Venue,
        cfg: FeedConfig,
        sink: TickSink,
        *,
        recorder: Recorder | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.venue = venue
        self.cfg = cfg
        self.sink = sink
        self.recorder = recorder
        self.clock_ns = clock_ns
        self.stats = FeedStats(venue.name)
        self.offset = ClockOffset()
        self.reorder = Reorder(round(cfg.reorder_ms * 1_000_000))
        # frames as received; None marks a new connection, in the order frames were received
        self._frames: asyncio.Queue[tuple[int, bytes | None, _Conn]] = asyncio.Queue()
        self._pending: list[tuple[Tick, bool, int]] = []  # before the offset is known
        self._first_frame_ns: int | None = None
        self._rng = random.Random(cfg.seed)
        self._conns: set[_Conn] = set()
        self._n = 0
        self._rotating: tuple[_Conn, _Conn] | None = None
        self._last_status = time.monotonic()
        self.url = venue.connect_url(cfg.url or venue.url, cfg.symbols)
        #: called with every tick sent and its frame's receive time (benchmarks, the view)
        self.on_emit: Callable[[Tick, int], None] | None = None
        #: called before every status record with the stats (``per_symbol`` then holds the ticks
        #: sent since the last), the open connections and the ticks held (the metrics)
        self.on_status: Callable[[FeedStats, int, int], None] | None = None

    async def run(self, stop: asyncio.Event) -> FeedStats:
        tasks = [
            asyncio.create_task(self._supervise(stop)),
            asyncio.create_task(self._process()),
            asyncio.create_task(self._tick_timer(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for c in list(self._conns):
                await self._close(c)
            while not self._frames.empty():  # what arrived before the stop is still applied
                self._route(*self._frames.get_nowait())
            self._end_rotation()
            self._release_pending(force=True)
            self._emit(self.reorder.flush_all())
            self._status()
            self.sink.flush()
            if self.recorder is not None:
                self.recorder.close()
        return self.stats

    # --- connections -------------------------------------------------------------------------
    async def _supervise(self, stop: asyncio.Event) -> None:
        attempt = 0
        conn = self._start()
        while not stop.is_set():
            assert conn.task is not None
            rotate = asyncio.create_task(conn.rotate.wait())
            try:
                await asyncio.wait({conn.task, rotate}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                rotate.cancel()
            if conn.task.done():  # disconnected
                self.stats.disconnects += 1
                attempt = 0 if conn.has_data.is_set() else attempt + 1
                cfg = self.cfg
                delay = backoff_s(attempt, cfg.backoff_s, cfg.backoff_max_s, self._rng.random())
                log.info("%s: reconnecting in %.2f s", self.venue.name, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return
                conn = self._start()
                continue
            # rotate: a second connection; its frames are held until the old one delivers
            # the first of them (it has then delivered everything sent before the new one
            # began), then the old one closes and the held frames follow: nothing is lost, and
            # the repeats are dropped by id
            self.stats.rotations += 1
            nxt = self._start()
            assert nxt.task is not None and conn.task is not None
            self._rotating = (conn, nxt)
            await self._until(conn.overlap, (conn.task, nxt.task), 30.0)
            if nxt.task.done():  # the new one failed: keep the old, try again later
                self._end_rotation()
                conn.rotate.clear()
                conn.opened = time.monotonic()
                if conn.task.done():
                    continue
                log.warning("%s: rotation failed; keeping connection %d", self.venue.name, conn.n)
                continue
            if self._rotating is not None:
                log.warning("%s: the old connection never caught up: switching", self.venue.name)
                self._end_rotation()
            log.info("%s: rotated connection %d -> %d", self.venue.name, conn.n, nxt.n)
            await self._close(conn)
            conn = nxt

    def _end_rotation(self) -> None:
        """Apply the new connection's held frames (in order) and read it directly from now."""
        if self._rotating is None:
            return
        new = self._rotating[1]
        self._rotating = None
        held, new.held = new.held, []
        for recv_ns, raw in held:
            self._apply(recv_ns, raw, new)

    @staticmethod
    async def _until(
        event: asyncio.Event, tasks: tuple[asyncio.Task[None], ...], timeout: float
    ) -> None:
        """Wait for ``event``, or one of ``tasks`` to end, or ``timeout``."""
        waiter = asyncio.create_task(event.wait())
        try:
            await asyncio.wait(
                {waiter, *tasks}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()

    def _start(self) -> _Conn:
        self._n += 1
        c = _Conn(self._n)
        c.task = asyncio.create_task(self._connection(c))
        self._conns.add(c)
        return c

    async def _close(self, c: _Conn) -> None:
        self._conns.discard(c)
        if c.task is not None and not c.task.done():
            c.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await c.task

    async def _connection(self, c: _Conn) -> None:
        v, cfg = self.venue, self.cfg
        rotate_s = cfg.rotate_s if cfg.rotate_s is not None else v.rotate_s
        try:
            async with connect(
                self.url,
                proxy=None,
                ping_interval=20 if v.pings else None,
                ping_timeout=20 if v.pings else None,
                max_size=2**22,
                compression=None,
                open_timeout=10,
                close_timeout=2,
            ) as ws:
                c.ws = ws
                self.stats.connects += 1
                self._frames.put_nowait((self.clock_ns(), None, c))
                log.info("%s: connected (%d) to %s", v.name, c.n, self.url)
                for i, sub in enumerate(v.subscribe(cfg.symbols)):
                    if i and i % cfg.max_out_per_s == 0:
                        await asyncio.sleep(1.0)  # the venue's outgoing message limit
                    await ws.send(sub)
                while True:
                    if rotate_s is not None and time.monotonic() - c.opened >= rotate_s:
                        c.rotate.set()
                    try:
                        msg = await asyncio.wait_for(ws.recv(), cfg.stale_s)
                    except TimeoutError:
                        self.stats.stale += 1
                        log.warning("%s: no frame for %.1f s: reconnecting", v.name, cfg.stale_s)
                        return
                    raw = msg.encode() if isinstance(msg, str) else msg
                    self._frames.put_nowait((self.clock_ns(), raw, c))
                    c.has_data.set()
        except ConnectionClosed as e:
            log.info("%s: connection %d closed: %s", v.name, c.n, e)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
            log.warning("%s: cannot connect to %s: %s", v.name, self.url, e)

    # --- frames ------------------------------------------------------------------------------
    async def _process(self) -> None:
        n = 0
        while True:
            recv_ns, raw, conn = await self._frames.get()
            self._route(recv_ns, raw, conn)
            n += 1
            if self._frames.empty():
                self.sink.poll()
            elif n % 64 == 0:
                # a get() from a non-empty queue never yields: let the connections read (and
                # stamp their receive times) while a backlog is worked off
                await asyncio.sleep(0)

    def _route(self, recv_ns: int, raw: bytes | None, conn: _Conn) -> None:
        """During a rotation, hold the new connection's frames until the old one has
        delivered the first of them."""
        if raw is None:  # a connection opened: the venue's per-connection state restarts here
            self.venue.on_connect()
            if self.recorder is not None:
                self.recorder.connected(recv_ns, conn.n)
            return
        rot = self._rotating
        if rot is not None:
            old, new = rot
            if conn is new:
                new.held.append((recv_ns, raw))
                return
            if conn is old and new.held and raw == new.held[0][1]:
                self._apply(recv_ns, raw, conn)
                old.overlap.set()
                self._end_rotation()
                return
        self._apply(recv_ns, raw, conn)

    def _apply(self, recv_ns: int, raw: bytes, conn: _Conn) -> None:
        st = self.stats
        st.frames += 1
        if self._first_frame_ns is None:
            self._first_frame_ns = recv_ns
        if self.recorder is not None:
            self.recorder.frame(recv_ns, raw)
        try:
            p = self.venue.parse(raw, recv_ns)
        except FrameError as e:
            st.rejects += 1
            self.sink.reject(
                Reject(
                    f"feed:{self.venue.name}",
                    st.frames,
                    str(e),
                    raw[:65536].decode("utf-8", "replace"),
                )
            )
            return
        if p.error is not None:
            st.errors += 1
            log.warning("%s: venue error: %s", self.venue.name, p.error)
        if p.shutdown:
            st.shutdowns += 1
            log.warning("%s: server shutdown announced: rotating", self.venue.name)
            conn.rotate.set()
        st.duplicates += p.duplicates
        if p.gaps:
            st.gaps += len(p.gaps)
            st.missing += p.missing
            st.last_gap = p.gaps[-1]
            for g in p.gaps:
                log.warning("%s: gap: %s", self.venue.name, g)
        for exch in p.samples:
            new = self.offset.add(exch, recv_ns)
            if new is not None:
                st.offset_ns = new
                if self.recorder is not None:
                    self.recorder.meta(recv_ns, new)
        for tick, needs in p.ticks:  # frame-to-tick latency counts from the receipt
            self._pending.append((tick, needs, recv_ns))
        self._release_pending()

    def _release_pending(self, force: bool = False) -> None:
        """Ticks wait until the clock offset is known (their quotes need it), then go to the
        reorder buffer in arrival order."""
        if not self._pending:
            return
        off = self.offset.value
        if off is None:
            first = self._first_frame_ns or 0
            if not force and self.clock_ns() - first < self.cfg.offset_wait_s * NS:
                return
            log.warning(
                "%s: no trade to measure the clock offset: quotes at offset 0", self.venue.name
            )
            self.offset.fix(0)
            self.stats.offset_ns = off = 0
            if self.recorder is not None:
                self.recorder.meta(self._pending[-1][2], 0)
        pending, self._pending = self._pending, []
        now = self.clock_ns()
        for tick, needs, recv_ns in pending:
            if needs and isinstance(tick, Quote):
                tick.ts = recv_ns + off
            if self.reorder.is_late(tick):
                self._late(tick, recv_ns)
                continue
            self._emit(self.reorder.push(tick, now, recv_ns))

    def _late(self, tick: Tick, recv_ns: int) -> None:
        self.stats.late += 1
        self.stats.rejects += 1
        lag = (self.reorder.released - tick.ts) / 1e6
        self.sink.reject(
            Reject(
                f"feed:{self.venue.name}",
                self.stats.frames,
                f"late by {lag:.3f} ms, beyond the {self.cfg.reorder_ms:.0f} ms reorder window",
                orjson.dumps({"symbol": tick.symbol, "ts": tick.ts, "recv_ns": recv_ns}).decode(),
            )
        )

    def _emit(self, released: list[tuple[Tick, int]]) -> None:
        if not released:
            return
        now = self.clock_ns()
        st = self.stats
        hook = self.on_emit
        for tick, wall in released:
            self.sink.tick(tick)
            if hook is not None:
                hook(tick, wall)
            st.ticks += 1
            st.per_symbol[tick.symbol] += 1
            if len(st.latencies_ns) < 100_000:
                st.latencies_ns.append(now - wall)

    async def _tick_timer(self, stop: asyncio.Event) -> None:
        """Release by wall time (a quiet feed), and publish the status every ``status_s``."""
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            self._release_pending()
            if self._frames.empty():  # a quiet feed, not a backlog
                self._emit(self.reorder.flush_older(self.clock_ns()))
            self.sink.poll()
            if time.monotonic() - last >= self.cfg.status_s:
                last = time.monotonic()
                self._status()
                if self.recorder is not None:
                    self.recorder.flush()

    def _status(self) -> None:
        now = time.monotonic()
        elapsed, self._last_status = now - self._last_status, now
        connected = sum(1 for c in self._conns if c.ws is not None and c.task and not c.task.done())
        held = len(self.reorder) + len(self._pending)
        self.stats.offset_ns = self.offset.value
        if self.on_status is not None:
            self.on_status(self.stats, connected, held)
        self.sink.status(self.stats.status(self.clock_ns(), elapsed, connected, held))
