"""The Kafka paper agent on the real broker and Redis: the fills of ``quorum backtest --paper``,
through three SIGKILLs, and a kill switch that holds across a restart.

The full spot sample is needed: the fixtures' heads only give HOLD, so nothing would trade.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from confluent_kafka import Producer

from config.paper import PaperConfig
from config.runtime import RuntimeConfig
from quorum import run_backtest
from streams.replay import replay
from tests.integration.conftest import ROOT, drain, log_text, wait_for_log, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FULL_SAMPLE = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
SECRET = "paper-integration-secret-0123"
StartPaper = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict]:
    """The embedded run the agent must reproduce: its fills and its report's paper section."""
    out = tmp_path_factory.mktemp("paper-backtest")
    result = run_backtest(FULL_SAMPLE, out_dir=out, paper=PaperConfig())
    fills = [orjson.loads(line) for line in (out / "fills.jsonl").read_bytes().splitlines()]
    assert len(fills) > 500, "the sample must trade for this test to mean anything"
    return fills, result.report["paper"]


def _env(rt: RuntimeConfig) -> dict[str, str]:
    return {**os.environ, "QUORUM_TOPIC_PREFIX": rt.topics.prefix, "QUORUM_STATE_SECRET": SECRET}


@pytest.fixture
def start_paper(rt: RuntimeConfig, tmp_path: Path) -> Iterator[StartPaper]:
    """``quorum paper run`` processes on this test's topics, logs in tmp_path/paperN.log."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"paper{len(procs)}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "paper", "run", *args],
            cwd=ROOT,
            env=_env(rt),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for log in logs:
        log.close()
    for n in range(len(logs)):
        lines = log_text(tmp_path / f"paper{n}.log").splitlines()
        print(f"--- paper{n}.log (last 30 of {len(lines)} lines) ---")
        print("\n".join(lines[-30:]))


def cli(rt: RuntimeConfig, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "quorum.cli", "paper", *args],
        cwd=ROOT,
        env=_env(rt),
        capture_output=True,
        check=True,
        timeout=120,
    )


def topic_records(rt: RuntimeConfig, key: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, _, v in drain(rt, rt.topic(key), timeout=60)]


def key_of(f: dict[str, Any]) -> tuple[Any, ...]:
    return (f["id"], f["order_id"], f["ts"], f["side"], f["price"], f["size"], f["fee"])


def per_symbol(fills: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Each symbol's fills in order: a topic keeps the order within a key's partition only."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for f in fills:
        out.setdefault(f["symbol"], []).append(key_of(f))
    return out


def status(rt: RuntimeConfig, account: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        cli(rt, "status", "--account", account, "--format", "json").stdout
    )
    return doc


def test_the_paper_agent_gives_the_backtests_fills_and_positions(
    rt: RuntimeConfig,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    start_paper: StartPaper,
    backtest: tuple[list[dict[str, Any]], dict],
    tmp_path: Path,
) -> None:
    """Catches: any difference between the drivers (the cross-symbol order, a signal applied
    before or after the wrong tick, the mid it sizes on, batch decoding), lost or doubled
    inputs, a duplicated signal that trades twice, and a fills reader that repeats or drops
    ids."""
    fills, report = backtest
    start_worker("--join-timeout", "600")
    replay(FULL_SAMPLE, rt, speed=None)
    # as after a worker crash: signals published twice (same ids, same partitions, later)
    n_signals = report["merge"]["signals"]
    wait_until("every signal", lambda: len(drain(rt, rt.topic("signals"))) >= n_signals, 300)
    copies = drain(rt, rt.topic("signals"))[:2000]
    producer = Producer(rt.librdkafka())
    for partition, key, value in copies:
        producer.produce(rt.topic("signals"), value, key, partition=partition)
    assert producer.flush(30) == 0
    paper = start_paper("--account", "parity", "--exit-when-idle", "4")
    assert paper.wait(timeout=400) == 0
    got = [
        orjson.loads(line)
        for line in cli(
            rt,
            "fills",
            "--account",
            "parity",
            "--from-beginning",
            "--timeout",
            "5",
            "--format",
            "jsonl",
        ).stdout.splitlines()
    ]
    assert per_symbol(got) == per_symbol(fills)
    st = status(rt, "parity")
    assert st["merge"]["paired"] == report["merge"]["paired"] > 0
    assert all(st["merge"][k] == 0 for k in ("unpaired", "late_signals", "late_ticks"))
    assert st["merge"]["duplicates"] == len(copies), "the re-sent signals were not dropped"
    assert (st["n_orders"], st["n_fills"], st["denied"]) == (
        report["n_orders"],
        report["n_fills"],
        report["denied"],
    )
    assert st["net_pnl"] == pytest.approx(report["net_pnl"], abs=1e-9)
    positions = orjson.loads(cli(rt, "positions", "--account", "parity", "-f", "json").stdout)
    assert {p["symbol"]: p["size"] for p in positions} == {
        s: p["size"] for s, p in report["positions"].items()
    }
    # every fill made a positions record; the last per symbol is the final position
    pos = topic_records(rt, "positions")
    assert len(pos) == len(fills)
    last = {p["symbol"]: p["size"] for p in pos}
    assert {s: v for s, v in last.items() if abs(v) > 1e-12} == {
        s: p["size"] for s, p in report["positions"].items()
    }


def test_sigkill_three_times_gives_the_same_fills(
    rt: RuntimeConfig,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    start_paper: StartPaper,
    backtest: tuple[list[dict[str, Any]], dict],
    tmp_path: Path,
) -> None:
    """Catches: offsets saved apart from the state (inputs applied twice or skipped after a
    restart: the fills differ), outputs not flushed before the checkpoint (fills lost), state
    not loaded (the restart starts a fresh account), and non-deterministic fill ids."""
    fills, _ = backtest
    start_worker("--join-timeout", "600")
    replay(FULL_SAMPLE, rt, speed=None)
    args = ("--account", "crash", "--checkpoint-interval", "0.3", "--checkpoint-every", "1000")
    kills = (300, 700, 1100)  # fills seen on the topic before each kill
    seen = [0]

    def fills_on_topic() -> int:
        seen[0] = len(topic_records(rt, "fills"))
        return seen[0]

    for n, after in enumerate(kills):
        proc = start_paper(*args)
        wait_until(f"{after} fills", lambda after=after: fills_on_topic() >= after, 300)
        assert proc.poll() is None, "it was still running when killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if n > 0:
            wait_for_log(tmp_path / f"paper{n}.log", "loaded account crash")
    final = start_paper(*args, "--exit-when-idle", "4")
    assert final.wait(timeout=400) == 0

    published = topic_records(rt, "fills")
    by_id: dict[str, dict[str, Any]] = {}
    for f in published:
        assert by_id.setdefault(f["id"], f) == f, "a fill id was re-sent with other content"
    assert per_symbol(list(by_id.values())) == per_symbol(fills)
    # each restart loaded the checkpoint and read on from its offsets: fewer records than all
    loaded = [
        int(m.group(1))
        for n in range(1, len(kills) + 1)
        for m in re.finditer(
            r"loaded account crash: (\d+) inputs", log_text(tmp_path / f"paper{n}.log")
        )
    ]
    assert len(loaded) == len(kills) and loaded == sorted(loaded) and loaded[0] > 0, loaded
    stopped = re.search(r"stopped account crash: (\d+) records", log_text(tmp_path / "paper3.log"))
    assert stopped is not None
    total = status(rt, "crash")["inputs"]
    assert int(stopped.group(1)) == total - loaded[-1]
    # A restart re-sends the fills made since its last checkpoint, at most 1,000 events
    # earlier. The sample's fills are bursty: at most 226 of them fall within any 1,000
    # consecutive events of the backtest (measured with the session's own order), so 3 kills
    # repeat at most 678. An agent that checkpointed less often, or restarted from an older
    # checkpoint, or from scratch (>= 300 + 700 + 1,100 = 2,100), repeats more.
    repeats = len(published) - len(by_id)
    print(f"{repeats} repeated fills of {len(by_id)} after {len(kills)} kills")
    assert repeats <= len(kills) * 226


def test_halt_stops_new_orders_and_survives_a_restart(
    rt: RuntimeConfig,
    start_worker: Callable[..., subprocess.Popen[bytes]],
    start_paper: StartPaper,
    tmp_path: Path,
) -> None:
    """Catches: a halt that is not applied (orders go on), applied late (orders after its
    event time), not made durable (lost on a SIGKILL right after it), and a resume that does
    not lift it."""
    start_worker("--join-timeout", "600")
    paper = start_paper("--account", "halt")
    log0, log1 = tmp_path / "paper0.log", tmp_path / "paper1.log"
    wait_for_log(log0, "new account halt")
    # paced, so the agent trades while ticks arrive: the sample's 11 minutes in ~33 s
    feeder = threading.Thread(target=replay, args=(FULL_SAMPLE, rt), kwargs={"speed": 20.0})
    feeder.start()
    try:
        wait_until("the first fills", lambda: len(topic_records(rt, "fills")) >= 20, 120)
        cli(rt, "halt", "--account", "halt", "--operator", "it")
        wait_for_log(log0, "applied halt from it")
        paper.send_signal(signal.SIGKILL)  # at once: the halt must already be saved
        paper.wait(timeout=10)
        halted_at, latency_ms = _applied(log0, "halt")
        print(f"halt applied {latency_ms} ms after the command")
        restarted = start_paper("--account", "halt", "--exit-when-idle", "4")
        wait_for_log(log1, "halted True")  # loaded halted
        wait_until("a checkpoint past the halt", lambda: status(rt, "halt")["inputs"] > 0, 60)
        assert feeder.is_alive(), "the replay ended before the resume: nothing left to trade"
        cli(rt, "resume", "--account", "halt", "--operator", "it")
        wait_for_log(log1, "applied resume from it")
        resumed_at, _ = _applied(log1, "resume")
    finally:
        feeder.join(timeout=120)
    assert restarted.wait(timeout=300) == 0
    assert status(rt, "halt")["halted"] is False
    records = topic_records(rt, "orders")
    # strictly between: events of the command's own event time (a burst of trades at one
    # timestamp) may be applied on either side of it, so that instant proves nothing
    while_halted = [r for r in records if halted_at < r["ts"] < resumed_at]
    assert any(r.get("reason") == "halted" for r in while_halted), "no signal while halted"
    sent = [r for r in while_halted if r["type"] == "order"]
    assert not sent, f"{len(sent)} order(s) sent while halted, first {sent[0]}"
    assert any(r["type"] == "order" for r in records if r["ts"] > resumed_at), "no order after"


def _applied(log: Path, cmd: str) -> tuple[int, int]:
    """(event time, ms after it was sent) of the agent's 'applied <cmd>' log line."""
    m = re.search(
        rf"applied {cmd} from it \(command \S+\) at event time (\d+), (\d+) ms", log_text(log)
    )
    assert m is not None, f"no 'applied {cmd}' line"
    return int(m.group(1)), int(m.group(2))
