"""A local exchange simulator: recorded frames served over a websocket as the venue does.

Live venues cannot be reached from tests (or from this machine), so the connectors are tested
against this server on 127.0.0.1. It serves the bundled recordings or any ``quorum feed
--record`` output (``<recv_ns> <json>`` lines, gzip or not) or plain JSON-lines fixtures:

- **binance**: combined streams from the URL (``/stream?streams=btcusdt@trade/...``), or a raw
  stream (``/ws/<stream>``), or ``{"method": "SUBSCRIBE"}`` requests (answered
  ``{"result": null, "id": ...}``); pings from the server (the websockets keepalive); more than
  5 incoming messages in a second closes the connection, as Binance does.
- **coinbase** (Advanced Trade): the client must subscribe within 5 s, one channel per
  message; a ``subscriptions`` ack; ``sequence_num`` counted per connection; a ``heartbeats``
  frame every second to a client that subscribed to them; a connection without heartbeats is
  closed after ``quiet_close_s`` without frames.

Paced (``speed``), a Binance frame's exchange times (``T``, ``E``) are moved onto the wall
clock the same way its receive time is (``retime``, the default): the venue's clock then runs
with ours, as a live venue's does, and quotes stamped by the measured clock offset line up with
trades at any speed. ``retime=False`` serves the bytes as recorded.

The simulated market is paused while nobody is connected: frames are never lost to a
reconnect unless a fault says so, which keeps fault tests deterministic. Faults (each fires
once, counted in :class:`SimStats`): close every connection after N frames; go silent for S
seconds; skip K trade frames (a gap the connector must report); re-send the last N frames to
the next connection (repeats it must drop); send the server-shutdown event, then close; and a
malformed frame after every Nth.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import heapq
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("quorum.feed.sim")

Venue = Literal["binance", "coinbase"]
MAX_IN_PER_S = 5  # Binance: incoming messages per second before it disconnects
SUBSCRIBE_WITHIN_S = 5.0  # Coinbase: no subscription by then closes the connection
MAX_QUEUE = 100_000  # frames queued for one slow client before it is dropped


@dataclass(frozen=True, slots=True)
class Frame:
    recv_ns: int | None  # when it was recorded (pacing); None for a fixture without times
    key: str  # binance: the stream name; coinbase: the channel
    products: tuple[str, ...]  # coinbase: the product ids it carries (for the filter)
    body: bytes  # the raw frame (binance: the combined-stream envelope)
    trade: bool  # a trade frame (the gap fault skips these)


@dataclass(frozen=True, slots=True)
class Faults:
    close_after: int | None = None
    silence_after: int | None = None
    silence_s: float = 0.0
    gap_after: int | None = None
    gap_trades: int = 0
    repeat: int = 0
    shutdown_after: int | None = None
    shutdown_grace_s: float = 1.0
    malformed_every: int | None = None


@dataclass
class SimStats:
    connections: int = 0
    frames: int = 0  # distinct frames of the source served (repeats and malformed not counted)
    sent: int = 0  # frames written to sockets, all connections
    repeated: int = 0
    skipped_trades: int = 0
    malformed: int = 0
    closes: int = 0  # connections the simulator closed (faults, rate limit, no subscription)
    silences: int = 0
    shutdowns: int = 0
    rate_limited: int = 0
    done: bool = False  # the source is exhausted


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if raw:
                yield raw


def _parse(venue: Venue, raw: bytes) -> Frame | None:
    head, sep, body = raw.partition(b" ")
    recv: int | None = None
    if sep and head.isdigit():
        recv = int(head)
    else:
        body = raw
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    if venue == "binance":
        stream = obj.get("stream")
        if not isinstance(stream, str) or not stream.endswith(("@trade", "@bookTicker")):
            return None  # depth, snapshots, meta lines: not served
        return Frame(recv, stream.lower(), (), body, stream.endswith("@trade"))
    channel = obj.get("channel")
    if not isinstance(channel, str) or channel in ("subscriptions", "heartbeats"):
        return None  # made per connection
    products: set[str] = set()
    for ev in obj.get("events") or ():
        if isinstance(ev, dict):
            for item in [*(ev.get("trades") or ()), *(ev.get("tickers") or ())]:
                if isinstance(item, dict) and isinstance(item.get("product_id"), str):
                    products.add(item["product_id"])
    return Frame(recv, channel, tuple(sorted(products)), body, channel == "market_trades")


def load_frames(paths: Iterable[Path | str], venue: Venue) -> Iterator[Frame]:
    """The frames of ``paths`` merged by receive time (a file's order where it has none)."""
    iters = []
    for i, p in enumerate(paths):
        frames = (f for f in map(lambda r: _parse(venue, r), _lines(Path(p))) if f is not None)
        iters.append(((f.recv_ns or 0, i, n, f) for n, f in enumerate(frames)))
    for _, _, _, f in heapq.merge(*iters):
        yield f


@dataclass(eq=False)  # hashed by identity: a set of live connections
class _Client:
    ws: ServerConnection
    venue: Venue
    streams: set[str] = field(default_factory=set)  # binance streams, or coinbase channels
    products: set[str] = field(default_factory=set)
    raw: bool = False  # binance /ws/<stream>: frames without the envelope
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    seq: int = 0  # coinbase sequence_num of this connection
    in_times: deque[float] = field(default_factory=deque)
    closing: tuple[int, str] | None = None  # closed by the sender once what was queued is sent

    def wants(self, f: Frame) -> bool:
        if f.key not in self.streams:
            return False
        return not f.products or not self.products or bool(self.products.intersection(f.products))

    def put(self, body: bytes) -> None:
        if self.venue == "coinbase":
            body = _restamp(body, self.seq)
            self.seq += 1
        elif self.raw:
            body = orjson.dumps(orjson.loads(body)["data"])
        self.queue.put_nowait(body)


def _restamp(body: bytes, seq: int) -> bytes:
    obj = orjson.loads(body)
    if isinstance(obj, dict):
        obj["sequence_num"] = seq
        return orjson.dumps(obj)
    return body


def _retime(body: bytes, base_ns: int, first_ns: int, speed: float) -> bytes:
    """The frame with its exchange times (``T``, ``E``, ms) moved to now: the recorded
    timeline mapped onto the wall clock (at ``speed``), the way the recording's receive times
    are paced, so the exchange clock runs with the wall clock as a live venue's does."""
    obj = orjson.loads(body)
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict):
        return body
    for key in ("T", "E"):
        v = data.get(key)
        if type(v) is int:
            data[key] = (base_ns + round((v * 1_000_000 - first_ns) / speed)) // 1_000_000
    return orjson.dumps(obj)


def _iso(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


class Simulator:
    """Serve ``frames`` to every connection subscribed to them, paced by ``speed`` (1 = the
    recorded rate, 10 = ten times faster, None = as fast as the sockets take them)."""

    def __init__(
        self,
        frames: Iterable[Frame],
        venue: Venue,
        *,
        speed: float | None = 1.0,
        faults: Faults | None = None,
        interval_s: float = 0.05,
        quiet_close_s: float = 60.0,
        retime: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.venue = venue
        self.speed = speed
        self.faults = faults = faults if faults is not None else Faults()
        self.interval_s = interval_s
        self.quiet_close_s = quiet_close_s
        self.retime = retime
        self.host, self.port = host, port
        self.stats = SimStats()
        self._frames = iter(frames)
        self._clients: set[_Client] = set()
        self._connected = asyncio.Event()
        self._recent: deque[Frame] = deque(maxlen=max(faults.repeat, 1))
        self._repeat_next = False
        self._server: Server | None = None
        self._pump: asyncio.Task[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._fired: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> int:
        self._server = await serve(
            self._handle, self.host, self.port, ping_interval=20, ping_timeout=60, compression=None
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._pump = asyncio.create_task(self._run_pump())
        if self.venue == "coinbase":
            self._beat = asyncio.create_task(self._heartbeats())
        log.info("simulating %s on ws://%s:%d", self.venue, self.host, self.port)
        return self.port

    async def stop(self) -> None:
        for task in (self._pump, self._beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # --- connections -------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws, self.venue)
        self.stats.connections += 1
        if self.venue == "binance":
            path = urlsplit(ws.request.path if ws.request is not None else "/")
            if path.path.startswith("/ws/"):
                client.streams.add(path.path[4:].lower())
                client.raw = True
            for names in parse_qs(path.query).get("streams", []):
                client.streams.update(s.lower() for s in names.split("/") if s)
        elif not await self._coinbase_subscribe(client):
            return
        if self._repeat_next and self.faults.repeat:
            self._repeat_next = False
            for f in self._recent:
                if client.wants(f):
                    client.put(f.body)
                    self.stats.repeated += 1
        self._clients.add(client)
        self._connected.set()
        sender = asyncio.create_task(self._send(client))
        try:
            async for msg in ws:
                if self._rate_limited(client):
                    self.stats.rate_limited += 1
                    self.stats.closes += 1
                    await ws.close(1008, "too many messages")
                    break
                await self._request(client, msg)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            if not self._clients:
                self._connected.clear()
            client.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    def _rate_limited(self, client: _Client) -> bool:
        now = time.monotonic()
        client.in_times.append(now)
        while client.in_times and client.in_times[0] < now - 1.0:
            client.in_times.popleft()
        return self.venue == "binance" and len(client.in_times) > MAX_IN_PER_S

    async def _request(self, client: _Client, msg: str | bytes) -> None:
        try:
            req = orjson.loads(msg)
        except orjson.JSONDecodeError:
            return
        if not isinstance(req, dict):
            return
        if self.venue == "binance" and req.get("method") in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = {str(s).lower() for s in req.get("params") or ()}
            if req["method"] == "SUBSCRIBE":
                client.streams |= names
            else:
                client.streams -= names
            await client.ws.send(orjson.dumps({"result": None, "id": req.get("id")}))
        elif self.venue == "coinbase" and req.get("type") == "subscribe":
            self._coinbase_add(client, req)
            await client.ws.send(self._subscriptions(client))

    async def _coinbase_subscribe(self, client: _Client) -> bool:
        """The first subscription must come within 5 s (then it is acknowledged)."""
        try:
            msg = await asyncio.wait_for(client.ws.recv(), SUBSCRIBE_WITHIN_S)
        except (TimeoutError, ConnectionClosed):
            self.stats.closes += 1
            with contextlib.suppress(ConnectionClosed):
                await client.ws.close(1008, "no subscription within 5 s")
            return False
        with contextlib.suppress(orjson.JSONDecodeError):
            req = orjson.loads(msg)
            if isinstance(req, dict) and req.get("type") == "subscribe":
                self._coinbase_add(client, req)
        await client.ws.send(self._subscriptions(client))
        return True

    @staticmethod
    def _coinbase_add(client: _Client, req: dict[str, object]) -> None:
        channel = req.get("channel")
        if isinstance(channel, str):
            client.streams.add(channel)
        products = req.get("product_ids")
        if isinstance(products, list):
            client.products.update(str(p) for p in products)

    def _subscriptions(self, client: _Client) -> bytes:
        subs = {c: sorted(client.products) for c in sorted(client.streams)}
        body = {
            "channel": "subscriptions",
            "client_id": "",
            "timestamp": _iso(time.time_ns()),
            "sequence_num": client.seq,
            "events": [{"subscriptions": subs}],
        }
        client.seq += 1
        return orjson.dumps(body)

    async def _send(self, client: _Client) -> None:
        quiet = self.venue == "coinbase" and "heartbeats" not in client.streams
        while True:
            try:
                if quiet:
                    body = await asyncio.wait_for(client.queue.get(), self.quiet_close_s)
                else:
                    body = await client.queue.get()
            except TimeoutError:
                self.stats.closes += 1
                await client.ws.close(1000, "no heartbeats subscription and no updates")
                return
            if body is None:
                if client.closing is not None:
                    await client.ws.close(*client.closing)
                return
            await client.ws.send(body)
            self.stats.sent += 1

    # --- the market --------------------------------------------------------------------------
    async def _wait_connected(self) -> float:
        """Block while nobody is connected; the seconds it waited (the market paused)."""
        if self._connected.is_set():
            return 0.0
        t = time.monotonic()
        await self._connected.wait()
        return time.monotonic() - t

    def _broadcast(self, body: bytes, f: Frame | None = None) -> None:
        for c in list(self._clients):
            if f is None or c.wants(f):
                if c.queue.qsize() >= MAX_QUEUE:
                    self._close([c], "too slow", 1008)
                    continue
                c.put(body)

    def _once(self, name: str, at: int | None) -> bool:
        if at is None or name in self._fired or self.stats.frames < at:
            return False
        self._fired.add(name)
        return True

    async def _run_pump(self) -> None:
        fl = self.faults
        base = time.monotonic()  # the wall time (monotonic) of the first recorded frame
        base_ns = time.time_ns()  # the same instant on the clock the venue stamps with
        first: int | None = None
        gap_left = 0
        for f in self._frames:
            waited = await self._wait_connected()
            base += waited
            base_ns += round(waited * 1e9)
            if f.trade and gap_left > 0:
                gap_left -= 1
                self.stats.skipped_trades += 1
                continue
            if self.speed:
                if f.recv_ns is not None:
                    if first is None:
                        first, base, base_ns = f.recv_ns, time.monotonic(), time.time_ns()
                    due = base + (f.recv_ns - first) / 1e9 / self.speed
                    if self.retime and self.venue == "binance":
                        f = replace(f, body=_retime(f.body, base_ns, first, self.speed))
                else:
                    due = base + self.interval_s / self.speed
                    base = due
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._broadcast(f.body, f)
            self._recent.append(f)
            self.stats.frames += 1
            if fl.malformed_every and self.stats.frames % fl.malformed_every == 0:
                self._broadcast(self._malformed())
                self.stats.malformed += 1
            if self._once("gap", fl.gap_after):
                gap_left = fl.gap_trades
            if self._once("silence", fl.silence_after):
                self.stats.silences += 1
                await asyncio.sleep(fl.silence_s)
                base += fl.silence_s
                base_ns += round(fl.silence_s * 1e9)
            if self._once("shutdown", fl.shutdown_after):
                self.stats.shutdowns += 1
                self._broadcast(self._shutdown_event())
                doomed = list(self._clients)
                asyncio.get_running_loop().call_later(
                    fl.shutdown_grace_s, self._close, doomed, "server shutdown"
                )
            if self._once("close", fl.close_after):
                self._repeat_next = True
                self._close(list(self._clients), "simulated disconnect")
            await asyncio.sleep(0)  # let the senders run
        self.stats.done = True
        log.info("source exhausted after %d frames", self.stats.frames)

    def _close(self, clients: list[_Client], reason: str, code: int = 1001) -> None:
        """Close after what is already queued to them is sent (nothing in flight is lost)."""
        for c in clients:
            if c not in self._clients:
                continue
            self.stats.closes += 1
            self._clients.discard(c)
            c.closing = (code, reason)
            c.queue.put_nowait(None)
        if not self._clients:
            self._connected.clear()

    def _malformed(self) -> bytes:
        if self.venue == "binance":
            return b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","p":'
        return b'{"channel":"market_trades","events":[{"trades":[{"price":"x"'

    def _shutdown_event(self) -> bytes:
        ms = time.time_ns() // 1_000_000
        if self.venue == "binance":
            return orjson.dumps({"e": "serverShutdown", "E": ms})
        return orjson.dumps({"type": "error", "message": "server shutting down"})

    async def _heartbeats(self) -> None:
        counter = 0
        while True:
            await asyncio.sleep(1.0)
            counter += 1
            now = _iso(time.time_ns())
            for c in list(self._clients):
                if "heartbeats" in c.streams:
                    body = {
                        "channel": "heartbeats",
                        "client_id": "",
                        "timestamp": now,
                        "sequence_num": 0,
                        "events": [{"current_time": now, "heartbeat_counter": counter}],
                    }
                    c.put(orjson.dumps(body))
