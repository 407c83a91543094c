"""Issue 11: frame-to-tick latency inside the connector and frame-to-signal latency end to end,
at the sample's real rate and at 10x.

    python -m bench.bench_live [--seconds 60] [--runs 1:500,10:500,10:50]

For each speed, on fresh topics: ``quorum feed serve`` (a child process) serves the bundled spot
sample on 127.0.0.1 at that speed (exchange times moved onto the wall clock, as a live venue's
run); the Binance connector runs in this process into Kafka; a fused ``quorum worker`` (a child,
memory state, live before the clock starts) turns ticks into signals; a reader thread here
reads the signals topic. Every tick the connector sends is logged with its frame's receive time:

- frame → tick: from the frame's receipt to the tick leaving the connector for the producer
  (parse, clock-offset stamp, the event-time reorder window, ``--reorder-ms`` 500 by default);
- frame → signal: from the receipt of the frame of a signal's trigger tick to that signal's
  arrival at the reader (the connector, Kafka, the worker's kernel, Kafka again).

All on one machine: the simulator, the connector, the broker, the worker and the reader share
its cores, and nothing here measures network distance to a venue.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition

from bench.bench_backtest import machine
from bench.bench_kafka import PROBE_SYMBOL, fresh_topics, running_worker
from config.runtime import RuntimeConfig
from models.records import Tick
from streams.feed import BinanceVenue, Feed, FeedConfig
from streams.feed_kafka import KafkaTickSink

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
SERVE = (sys.executable, "-m", "quorum.cli", "feed", "serve")
WARMUP_S = 5.0  # the first seconds: connections, consumer fetch sessions, the JIT-less warm-up


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


def _reader(
    runtime: RuntimeConfig,
    recv: dict[tuple[str, int], int],
    out: list[float],
    probe_seen: threading.Event,
    stop: threading.Event,
    t_start: list[int],
) -> None:
    topic = runtime.topic("signals")
    c = Consumer({**runtime.librdkafka(), "group.id": runtime.group("bench-live-reader")})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    try:
        while not stop.is_set():
            for msg in c.consume(500, timeout=0.05):
                if msg.error() is not None:
                    continue
                now = time.time_ns()
                s = orjson.loads(msg.value() or b"")
                if s["symbol"] == PROBE_SYMBOL:
                    probe_seen.set()
                    continue
                r = recv.get((s["symbol"], s["ts"]))
                if r is not None and t_start and r >= t_start[0]:
                    out.append((now - r) / 1e6)
    finally:
        c.close()


def run(speed: float, reorder_ms: float, seconds: float) -> dict[str, float]:
    with fresh_topics(f"live{speed:g}") as runtime:
        recv: dict[tuple[str, int], int] = {}
        tick_ms: list[float] = []
        signal_ms: list[float] = []
        probe_seen, stop_reader = threading.Event(), threading.Event()
        t_start: list[int] = []
        reader = threading.Thread(
            target=_reader,
            args=(runtime, recv, signal_ms, probe_seen, stop_reader, t_start),
            daemon=True,
        )
        reader.start()
        with running_worker(runtime, f"live{speed:g}", probe_seen) as worker:
            sim = subprocess.Popen(
                [*SERVE, *map(str, SAMPLE), "--port", "0", "--speed", str(speed)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                url = _url(sim)
                sink = KafkaTickSink(runtime)
                cfg = FeedConfig(["BTCUSDT", "ETHUSDT"], url=url, reorder_ms=reorder_ms)
                feed = Feed(BinanceVenue(), cfg, sink)

                def on_emit(tick: Tick, frame_ns: int) -> None:
                    recv.setdefault((tick.symbol, tick.ts), frame_ns)
                    if t_start and frame_ns >= t_start[0]:
                        tick_ms.append((time.time_ns() - frame_ns) / 1e6)

                feed.on_emit = on_emit

                async def main() -> None:
                    stop = asyncio.Event()
                    loop = asyncio.get_running_loop()
                    loop.call_later(WARMUP_S, lambda: t_start.append(time.time_ns()))
                    loop.call_later(WARMUP_S + seconds, stop.set)
                    await feed.run(stop)

                asyncio.run(main())
                time.sleep(3.0)  # the last signals come back
            finally:
                sim.terminate()
                sim.wait(timeout=30)
                stop_reader.set()
                reader.join(timeout=30)
        assert worker.exit_code == 0, "the worker failed"
        st = feed.stats
        return {
            "speed": speed,
            "reorder_ms": reorder_ms,
            "ticks": st.ticks,
            "ticks_per_s": st.ticks / (WARMUP_S + seconds),
            "tick_n": len(tick_ms),
            "tick_p50": pct(tick_ms, 0.5),
            "tick_p99": pct(tick_ms, 0.99),
            "signal_n": len(signal_ms),
            "signal_p50": pct(signal_ms, 0.5),
            "signal_p99": pct(signal_ms, 0.99),
            "signal_max": max(signal_ms, default=float("nan")),
            "late": st.late,
            "duplicates": st.duplicates,
        }


def _url(sim: subprocess.Popen[bytes]) -> str:
    assert sim.stderr is not None
    deadline = time.monotonic() + 30
    buf = b""
    while time.monotonic() < deadline:
        line = sim.stderr.readline()
        buf += line
        m = re.search(rb"serving binance on (ws://\S+)", line)
        if m:
            threading.Thread(target=sim.stderr.read, daemon=True).start()  # keep the pipe drained
            return m.group(1).decode() + "/stream"
        if sim.poll() is not None:
            break
    raise RuntimeError(f"the simulator did not start: {buf.decode(errors='replace')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured seconds per speed")
    ap.add_argument(
        "--runs",
        default="1:500,10:500,10:50",
        help="comma-separated SPEED:REORDER_MS runs (the reorder window is the connector's)",
    )
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(
        "speed | reorder ms | ticks/s | frame->tick p50 / p99 ms (n) | "
        "frame->signal p50 / p99 / max ms (n) | late | repeats"
    )
    for item in args.runs.split(","):
        speed, _, reorder = item.partition(":")
        r = run(float(speed), float(reorder or 500), args.seconds)
        print(
            f"{r['speed']:g}x | {r['reorder_ms']:g} | {r['ticks_per_s']:,.0f} | "
            f"{r['tick_p50']:.1f} / {r['tick_p99']:.1f} ({r['tick_n']:,.0f}) | "
            f"{r['signal_p50']:.1f} / {r['signal_p99']:.1f} / "
            f"{r['signal_max']:.1f} ({r['signal_n']:,.0f}) | {r['late']:.0f} | "
            f"{r['duplicates']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
