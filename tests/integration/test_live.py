"""The live loop end to end on the real Kafka and Redis: ``quorum feed serve`` (the simulator,
with a reconnect fault) → ``quorum live`` (feed → ticks → worker → signals → paper agent →
fills) → the signals and fills equal those of ``quorum backtest --paper`` on its recording.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from config.runtime import RuntimeConfig
from streams.paper_agent import iter_fills
from tests.integration.conftest import ROOT, drain, log_text, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

# the first 6 minutes of the spot sample (both symbols): enough to trade, light enough to keep
# up with under coverage on two cores
SESSION = sorted((ROOT / "data" / "binance" / "spot").glob("*_20240808.gz"))
SESSION_TICKS = 67_980
SECRET = "live-integration-secret-0123"
# 6 minutes in ~60 s, one reconnect with 200 frames re-sent after it
FAULT = ("--port", "0", "--speed", "6", "--close-after", "20000", "--repeat", "200")


def test_a_live_session_trades_exactly_as_the_backtest_of_its_recording(
    rt: RuntimeConfig, tmp_path: Path
) -> None:
    """Catches any difference between a live feed and its replay (stamping, order, repeats
    after the reconnect, the clock offset), and a live loop that loses or doubles anything
    between the feed, the worker and the paper agent, or does not stop cleanly."""
    env = {**os.environ, "QUORUM_TOPIC_PREFIX": rt.topics.prefix, "QUORUM_STATE_SECRET": SECRET}
    serve_log = tmp_path / "serve.log"
    with serve_log.open("wb") as out:
        sim = subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "feed", "serve", *map(str, SESSION), *FAULT],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until("the simulator", lambda: "serving binance on" in log_text(serve_log), 30)
        m = re.search(r"serving binance on (ws://\S+)", log_text(serve_log))
        assert m is not None
        rec = tmp_path / "recording"
        summary_path = tmp_path / "summary.json"
        live = subprocess.run(
            [
                *(sys.executable, "-m", "quorum.cli", "live", "--url", m.group(1) + "/stream"),
                *("--record", str(rec), "--stop-when-quiet", "3", "--duration", "240"),
                # the reader's own tolerance: a loaded machine (CI, coverage) delays receive
                # stamps, and a quote stamped late makes the trades after it late
                *("--no-view", "--account", "it", "--reorder-ms", "2000"),
                *("--log-dir", str(tmp_path / "live"), "--json", str(summary_path)),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    for name in ("worker", "paper"):
        lines = log_text(tmp_path / "live" / f"{name}.log").splitlines()
        print(f"--- {name}.log (last 20) ---", *lines[-20:], sep="\n")
    print(live.stderr.decode(errors="replace")[-3000:])
    assert live.returncode == 0
    summary: dict[str, Any] = orjson.loads(summary_path.read_bytes())
    feed = summary["feed"]
    # the fault happened and cost nothing: a reconnect, the 200 repeats dropped, no gap
    assert feed["connects"] == 2 and feed["stale"] == 0 and feed["duplicates"] == 200, feed
    assert feed["gaps"] == 0 and feed["rejects"] == 0
    assert feed["ticks"] == SESSION_TICKS  # every trade and quote of the files, once
    assert summary["children"] == {"worker": 0, "paper": 0}
    # the health records on feed.status: one a second, the last one the final counts
    status = [orjson.loads(v) for _, _, v in drain(rt, rt.topic("feed_status"), 30)]
    assert len(status) >= 20 and all(r["venue"] == "binance" for r in status)
    last = status[-1]
    assert (last["ticks"], last["duplicates"], last["gaps"]) == (feed["ticks"], 200, 0)
    assert last["connects"] == feed["connects"] and last["clock_offset_ns"] is not None
    assert any(r["frame_to_tick_ms"]["n"] > 0 for r in status)

    from quorum import run_backtest

    files = [Path(p) for p in feed["recorded"]]
    result = run_backtest(files, out_dir=tmp_path / "bt", paper=_paper_cfg())
    report = result.report
    assert report["events"] == feed["ticks"] and report["duplicates"] == 200
    want_signals = sorted(
        orjson.loads(line)["id"]
        for line in (tmp_path / "bt" / "signals.jsonl").read_bytes().splitlines()
    )
    got_signals = sorted(orjson.loads(v)["id"] for _, _, v in drain(rt, rt.topic("signals"), 60))
    assert got_signals == want_signals
    want = sorted(
        _key(orjson.loads(line))
        for line in (tmp_path / "bt" / "fills.jsonl").read_bytes().splitlines()
    )
    got = sorted(_key(f) for f in iter_fills(rt, "it", from_beginning=True, timeout_s=5))
    assert len(want) > 20, "the session must trade for this to mean anything"
    assert got == want
    assert summary["paper"]["n_fills"] == len(want)
    assert summary["paper"]["net_pnl"] == pytest.approx(report["paper"]["net_pnl"], abs=1e-6)


def _paper_cfg() -> Any:
    from config.paper import PaperConfig

    return PaperConfig()


def _key(f: dict[str, Any]) -> tuple[Any, ...]:
    return (
        f["id"],
        f["order_id"],
        f["symbol"],
        f["ts"],
        f["side"],
        f["price"],
        f["size"],
        f["fee"],
    )
