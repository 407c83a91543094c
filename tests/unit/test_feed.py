"""The live feed against the local simulator (127.0.0.1), and its pure parts by hand.

Each fault test asserts the mechanism it is named after happened (the simulator counts what it
did: closes, repeats, skipped trades, malformed frames, the shutdown event) and that the
connector lost nothing the simulator sent, kept no repeat, reported the gap it cannot recover,
and made exactly the ticks ``read_ticks`` makes from its recording.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from models.records import Quote, Trade
from streams import coinbase, feed_sim
from streams.feed import (
    BinanceVenue,
    CoinbaseVenue,
    Feed,
    FeedConfig,
    MemorySink,
    Recorder,
    backoff_s,
)
from streams.feed_clock import ClockOffset, Reorder
from streams.feed_sim import Faults, Simulator, load_frames
from streams.readers import ReaderStats, read_ticks

ROOT = Path(__file__).parents[2]
SPOT = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
COINBASE_FIXTURE = ROOT / "tests" / "fixtures" / "coinbase_advanced" / "frames.jsonl"
NS = 1_000_000_000


# --- pure parts, by hand ---------------------------------------------------------------------


def test_clock_offset_first_then_every_n_low_median() -> None:
    c = ClockOffset(first=3, every=4, window=4)
    assert c.add(110, 100) is None and c.add(130, 100) is None  # offsets 10, 30: not yet
    assert c.add(120, 100) == 20  # the first 3: low median of 10, 30, 20
    assert c.add(150, 100) is None  # 4th: due, low median of 10, 30, 20, 50 is 20: unchanged
    for off in (60, 70, 80):
        assert c.add(100 + off, 100) is None  # 5th-7th: not due
    assert c.add(190, 100) == 70  # 8th: the last 4 are 60, 70, 80, 90 -> low median 70
    assert (c.value, c.changes) == (70, 2)


def test_backoff_doubles_to_its_cap_with_jitter_in_half_to_full() -> None:
    steps = [backoff_s(n, 0.5, 30.0, 0.0) for n in range(8)]
    assert steps == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]  # half of 0.5 x 2^n, cap 30
    assert backoff_s(3, 0.5, 30.0, 0.5) == 4.0 * 0.75
    assert backoff_s(100, 0.5, 30.0, 0.999) == pytest.approx(29.985)  # capped, no overflow


def q(ts: int) -> Quote:
    return Quote("BTC", ts, 1.0, 2.0, 1.0, 1.0)


def test_reorder_releases_in_event_time_once_the_window_has_passed() -> None:
    r = Reorder(window_ns=10)
    assert r.push(q(100), 0) == [] and r.push(q(105), 1) == [] and r.push(q(103), 2) == []
    assert [t.ts for t, _ in r.push(q(112), 3)] == [100]  # 112 - 10 = 102
    # behind 103 but not behind the released 100: kept, and due at once (112 - 10 >= 101)
    assert [t.ts for t, _ in r.push(q(101), 4)] == [101]
    assert [t.ts for t, _ in r.push(q(125), 5)] == [103, 105, 112]
    assert r.is_late(q(110)) and r.push(q(110), 6) == [] and r.late == 1
    assert [t.ts for t, _ in r.flush_older(5 + 10)] == [125]  # arrived at 5: 10 ago
    r.push(q(130), 20, tag=7)  # the tag (the feed's frame receipt time) comes back with it
    assert [(t.ts, tag) for t, tag in r.flush_all()] == [(130, 7)]


def test_recorder_rotates_hourly_and_heads_each_file_with_the_offset(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "binance")
    h = 3600 * NS
    t0 = 1_796_216_400 * NS  # 2026-12-02T13:00:00Z
    rec.frame(t0 + 5, b'{"a":1}')
    rec.meta(t0 + 6, -42)
    rec.frame(t0 + h + 7, b'{"b":2}')
    rec.close()
    first, second = rec.files
    assert first.name == "binance_2026120213.gz" and second.name == "binance_2026120214.gz"
    assert gzip.decompress(
        first.read_bytes()
    ) == b'%d {"a":1}\n%d {"quorum_clock_offset_ns":-42}\n' % (
        t0 + 5,
        t0 + 6,
    )
    assert gzip.decompress(
        second.read_bytes()
    ) == b'%d {"quorum_clock_offset_ns":-42}\n%d {"b":2}\n' % (
        t0 + h + 7,
        t0 + h + 7,
    )


# --- sessions against the simulator ----------------------------------------------------------


async def _session(
    sim: Simulator, venue: BinanceVenue | CoinbaseVenue, symbols: list[str], rec: Path, **cfg: float
) -> tuple[Feed, MemorySink]:
    await sim.start()
    sink = MemorySink()
    path = "/stream" if venue.name == "binance" else ""
    feed = Feed(
        venue,
        FeedConfig(symbols=symbols, url=sim.url + path, backoff_s=0.05, **cfg),  # type: ignore[arg-type]
        sink,
        recorder=Recorder(rec, venue.name),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(stop))
    try:
        async with asyncio.timeout(40):
            while not (sim.stats.done and feed.stats.frames >= sim.stats.sent):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.8)  # the last frames applied (the stop flushes what is held)
    finally:
        stop.set()
        await task
        await sim.stop()
    return feed, sink


# The simulator and the connector share this process's event loop (and, under coverage, a slow
# tracer): receive stamps lag, and a quote stamped late makes the trades after it late. A wide
# window (and the same tolerance for the replay) keeps these tests about loss and repeats.
WINDOW_MS = 5_000


def _binance(n: int, faults: Faults, rec: Path, **cfg: float) -> tuple[Simulator, Feed, MemorySink]:
    cfg.setdefault("reorder_ms", WINDOW_MS)
    frames = itertools.islice(load_frames(SPOT, "binance"), n)
    sim = Simulator(frames, "binance", speed=50, faults=faults)
    feed, sink = asyncio.run(_session(sim, BinanceVenue(), ["BTCUSDT", "ETHUSDT"], rec, **cfg))
    return sim, feed, sink


def _replay(files: list[Path], **kw: int) -> tuple[list[object], ReaderStats]:
    stats = ReaderStats()
    kw.setdefault("tolerance_ns", WINDOW_MS * 1_000_000)
    return list(read_ticks(files, stats=stats, **kw)), stats


def test_every_fault_at_once_loses_and_repeats_nothing_and_replays_exactly(tmp_path: Path) -> None:
    """Catches: frames lost to a reconnect or a rotation (the old connection's unread backlog),
    repeats kept, a gap not reported, a malformed frame that stops the feed or vanishes, and a
    recording that does not replay to the same ticks."""
    faults = Faults(
        close_after=1500,
        repeat=100,
        gap_after=2500,
        gap_trades=3,
        malformed_every=1000,
        shutdown_after=3000,
        shutdown_grace_s=0.3,
    )
    sim, feed, sink = _binance(4000, faults, tmp_path)
    s, f = sim.stats, feed.stats
    # the faults happened
    assert (s.repeated, s.skipped_trades, s.malformed, s.shutdowns) == (100, 3, 3, 1)
    assert s.connections == 3 and f.connects == 3 and f.rotations == 1 and f.disconnects == 1
    # nothing lost in transit, each distinct frame once, every copy dropped
    assert f.frames == s.sent
    assert f.ticks == s.frames == 4000 - 3
    assert f.duplicates == s.sent - s.frames - s.malformed - s.shutdowns
    assert f.duplicates >= 100
    # the skipped trades are the one gap it reports (3 ids), and the bad frames dead letters
    assert f.missing == 3 and 1 <= f.gaps <= 2
    assert f.rejects == 3 and all("malformed JSON" in r.reason for r in sink.rejects)
    assert all(r.raw.startswith('{"stream":"btcusdt@trade"') for r in sink.rejects)
    assert f.late == 0
    # the recording replays to exactly these ticks
    replayed, rs = _replay(Recorder_files(tmp_path))
    assert replayed == sink.ticks
    assert (rs.duplicates, rs.missing_trade_ids, rs.rejected) == (f.duplicates, 3, 3)


def Recorder_files(d: Path) -> list[Path]:
    return sorted(d.glob("binance_*.gz"))


def test_stale_feed_watchdog_reconnects_and_loses_nothing(tmp_path: Path) -> None:
    """Catches a watchdog that never fires (the feed would hang on a silent socket)."""
    sim, feed, _ = _binance(800, Faults(silence_after=300, silence_s=1.5), tmp_path, stale_s=0.4)
    assert sim.stats.silences == 1
    assert feed.stats.stale >= 1 and feed.stats.connects >= 2
    assert feed.stats.ticks == sim.stats.frames == 800


def test_quotes_are_stamped_by_the_clock_offset_and_trades_by_the_venue(tmp_path: Path) -> None:
    """Catches quotes left at receive time (or trades moved): with the retimed simulator the
    venue's clock runs with ours, so every quote lands within the recorder's original skew
    (1.27 s at speed 1, /50 here) plus local latency of the trades around it."""
    _, feed, sink = _binance(2000, Faults(), tmp_path)
    assert feed.stats.offset_ns is not None and abs(feed.stats.offset_ns) < 0.2 * NS
    ts = [t.ts for t in sink.ticks]
    assert ts == sorted(ts)  # released in event-time order
    assert any(isinstance(t, Quote) for t in sink.ticks)
    assert any(isinstance(t, Trade) for t in sink.ticks)


def test_simulator_closes_a_client_over_five_messages_a_second() -> None:
    """Binance's outgoing limit, enforced here so a connector that floods is caught."""

    async def go() -> tuple[int | None, int]:
        sim = Simulator(iter(()), "binance", speed=None)
        await sim.start()
        try:
            async with connect(sim.url + "/stream?streams=btcusdt@trade", proxy=None) as ws:
                with pytest.raises(ConnectionClosed):
                    for i in range(10):
                        await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": [], "id": i}))
                    for _ in range(20):
                        await ws.recv()
                return ws.close_code, sim.stats.rate_limited
        finally:
            await sim.stop()

    code, limited = asyncio.run(go())
    assert code == 1008 and limited == 1


def test_coinbase_client_must_subscribe_within_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_sim, "SUBSCRIBE_WITHIN_S", 0.2)

    async def go() -> int | None:
        sim = Simulator(iter(()), "coinbase", speed=None)
        await sim.start()
        try:
            async with connect(sim.url, proxy=None) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code
        finally:
            await sim.stop()

    assert asyncio.run(go()) == 1008


def test_coinbase_session_gives_the_fixture_ticks_once(tmp_path: Path) -> None:
    """The hand-written Advanced Trade frames served (sequence numbers per connection), read by
    the connector with heartbeats: the ticks a parser makes of them, each once, in time order;
    the snapshot that re-sends known trades is de-duplicated."""
    served = list(load_frames([COINBASE_FIXTURE], "coinbase"))
    expect_parser = coinbase.CoinbaseParser()
    expected = []
    for seq, f in enumerate(served, start=1):  # after the subscriptions ack (0)
        body = orjson.loads(f.body) | {"sequence_num": seq}
        expected += expect_parser.parse(orjson.dumps(body), 0).ticks
    sim = Simulator(iter(served), "coinbase", speed=20, interval_s=0.05)
    # the fixture's second half re-sends older quotes: a wide reorder window keeps them
    feed, sink = asyncio.run(
        _session(sim, CoinbaseVenue(), ["BTC-USD", "ETH-USD"], tmp_path, reorder_ms=60_000)
    )
    assert feed.stats.connects == 1 and feed.stats.rejects == 0
    assert sink.ticks == sorted(expected, key=lambda t: t.ts)  # stable: arrival order on ties
    assert len([t for t in sink.ticks if isinstance(t, Trade)]) == 24
    assert feed.stats.duplicates == expect_parser.duplicates > 0
    assert [t.ts for t in sink.ticks] == sorted(t.ts for t in sink.ticks)
    # the recording replays to the same ticks (the Coinbase frames, the connection mark)
    replayed, rs = _replay(sorted(tmp_path.glob("coinbase_*.gz")), tolerance_ns=60 * NS)
    assert replayed == sink.ticks and rs.rejected == 0


def test_coinbase_replay_restarts_the_sequence_where_a_connection_opened(tmp_path: Path) -> None:
    """Catches a replay that reads a reconnect's restarted sequence_num as repeats (and drops
    their quotes) where the live connector, told of the new connection, did not."""
    served = list(load_frames([COINBASE_FIXTURE], "coinbase"))
    sim = Simulator(iter(served), "coinbase", speed=20, faults=Faults(close_after=10))
    feed, sink = asyncio.run(
        _session(sim, CoinbaseVenue(), ["BTC-USD", "ETH-USD"], tmp_path, reorder_ms=60_000)
    )
    assert feed.stats.connects == 2 and feed.stats.gaps == 0
    replayed, _ = _replay(sorted(tmp_path.glob("coinbase_*.gz")), tolerance_ns=60 * NS)
    assert replayed == sink.ticks
