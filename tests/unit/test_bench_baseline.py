"""The benchmark's yardsticks: the River baseline is prequential and the generator repeatable."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package; import it from the checkout
    sys.path.insert(0, str(ROOT))

from bench.synthetic import write  # noqa: E402
from models.records import Quote, Reject, Tick, Trade  # noqa: E402
from quorum.baseline import Baseline, TickSignBaseline, run_baseline  # noqa: E402
from streams.readers import ReaderStats, read_ticks  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "btcusdt_head.gz"
S = 1_000_000_000
T0 = 1_723_161_600 * S


class Spy:
    """A classifier that records when it predicts and learns, in the baseline's event time."""

    def __init__(self, clock: list[int], log: list[tuple[str, int, Any]]) -> None:
        self.clock = clock
        self.log = log
        self.n = 0

    def predict_proba_one(self, x: dict[str, float]) -> dict[Any, float]:
        self.log.append(("predict", self.clock[0], self.n))
        return {True: 0.9, False: 0.1}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.log.append(("learn", self.clock[0], y))
        self.n += 1


def test_baseline_runs_and_scores_on_real_ticks() -> None:
    r = run_baseline([FIXTURE])
    assert r.events > 1000 and 0 < r.trades < r.events
    assert r.score["n_scored"] > 100
    assert 0.0 < r.score["log_loss"] < 5.0
    assert r.events_per_s is not None and r.events_per_s > 0


def test_baseline_never_learns_before_the_label_exists() -> None:
    clock = [0]
    log: list[tuple[str, int, Any]] = []
    base = Baseline(horizon_s=5.0, models=lambda: [Spy(clock, log)])
    ticks: list[Tick] = [
        Quote("X", T0, 100.0, 100.2, 1.0, 1.0),  # mid 100.1
        Trade("X", T0 + 1 * S, 100.2, 1.0, "buy"),  # trigger A: deadline T0 + 6 s
        Trade("X", T0 + 2 * S, 100.2, 1.0, "buy"),  # trigger B: deadline T0 + 7 s
        Quote("X", T0 + 3 * S, 100.4, 100.6, 1.0, 1.0),  # mid 100.5: would be UP if used
        Quote("X", T0 + 6 * S, 99.0, 99.2, 1.0, 1.0),  # AT A's deadline, still counts: mid 99.1
        Trade("X", T0 + 6 * S + 1, 99.2, 1.0, "buy"),  # past A's deadline: learn A (DOWN), C
        Quote("X", T0 + 9 * S, 101.0, 101.2, 1.0, 1.0),  # past B's: B DOWN (99.1 at T0 + 7 s)
    ]
    p_of = []
    for t in ticks:
        clock[0] = t.ts
        p_of.append(base.process(t))
        learned_now = [e for e in log if e[0] == "learn"]
        if t.ts <= T0 + 6 * S:
            assert learned_now == [], "learned before event time passed the deadline"
    # A and B had nothing learned when they were predicted: a coin, and no model was asked
    assert p_of[1] == 0.5 and p_of[2] == 0.5
    learns = [e for e in log if e[0] == "learn"]
    assert learns == [("learn", T0 + 6 * S + 1, False), ("learn", T0 + 9 * S, False)]
    # C was predicted after A was learned, with exactly one example
    assert ("predict", T0 + 6 * S + 1, 1) in log
    assert p_of[5] == 0.9
    # A and B were scored with the coin they predicted; C is still unresolved
    assert base.score.n == 2
    assert base.score.log_loss_sum / base.score.n == pytest.approx(math.log(2.0))
    assert len(base.symbols["X"].labeler.pending) == 1


def test_tick_sign_baseline_by_hand() -> None:
    scored: list[tuple[str, int, int, float, bool]] = []
    base = TickSignBaseline(horizon_s=5.0, on_scored=lambda *a: scored.append(a))
    ticks: list[Tick] = [
        Quote("X", T0, 100.0, 100.2, 1.0, 1.0),  # seq 1, mid 100.1
        Trade("X", T0 + 1 * S, 100.2, 1.0),  # seq 2 A: no change seen, cell 0 (0, 0) -> 1/2
        Trade("X", T0 + 2 * S, 100.3, 1.0),  # seq 3 B: up-tick, cell +1 (0, 0) -> 1/2
        Quote("X", T0 + 3 * S, 100.4, 100.6, 1.0, 1.0),  # seq 4, mid 100.5
        # seq 5 C: A (deadline +6 s) and B (+7 s) resolve first at mid 100.5: both UP, so
        # cell 0 = (1, 0), cell +1 = (1, 0); then the down-tick: cell -1 (0, 0) -> 1/2
        Trade("X", T0 + 8 * S, 100.0, 1.0),
        Trade("X", T0 + 9 * S, 100.1, 1.0),  # seq 6 D: up-tick, cell +1 (1, 0) -> 2/3
        Trade("X", T0 + 9 * S + S // 2, 100.1, 1.0),  # seq 7 E: zero tick keeps +1 -> 2/3
        Quote("X", T0 + 10 * S, 99.9, 100.1, 1.0, 1.0),  # seq 8, mid 100.0
        # seq 9: C, D, E (deadlines +13, +14, +14.5 s) resolve at mid 100.0 < 100.5: DOWN
        Quote("X", T0 + 20 * S, 100.1, 100.3, 1.0, 1.0),
    ]
    ps = [base.process(t) for t in ticks]
    assert ps == [None, 0.5, 0.5, None, 0.5, pytest.approx(2 / 3), pytest.approx(2 / 3), None, None]
    assert scored == [
        ("X", 2, T0 + 1 * S, 0.5, True),
        ("X", 3, T0 + 2 * S, 0.5, True),
        ("X", 5, T0 + 8 * S, 0.5, False),
        ("X", 6, T0 + 9 * S, pytest.approx(2 / 3), False),
        ("X", 7, T0 + 9 * S + S // 2, pytest.approx(2 / 3), False),
    ]
    # log-loss: three coins (3 ln 2) and two 2/3-for-up that went down (2 ln 3), over 5
    assert base.score.n == 5
    assert base.score.log_loss_sum == pytest.approx(3 * math.log(2) + 2 * math.log(3))
    # cells: +1 saw B up, D and E down = (1, 2) -> 2/5; -1 saw C down -> 1/3; 0 saw A up -> 2/3
    assert base.table() == {
        "X": {1: (1, 2, pytest.approx(0.4)), -1: (0, 1, pytest.approx(1 / 3)),
              0: (1, 0, pytest.approx(2 / 3))},
    }  # fmt: skip
    assert base.trades == 5 and base.events == 9


def test_both_baselines_score_the_same_outcomes_with_quorums_numbering() -> None:
    # Catches: the baselines numbering ticks differently (evaluate matches them by seq), or the
    # hook missing outcomes the score counted.
    a: list[tuple[str, int, int]] = []
    b: list[tuple[str, int, int]] = []
    river = Baseline(on_scored=lambda sym, seq, ts, p, up: a.append((sym, seq, ts)))
    sign = TickSignBaseline(on_scored=lambda sym, seq, ts, p, up: b.append((sym, seq, ts)))
    by_symbol: dict[str, list[Tick]] = {}
    for tick in read_ticks([FIXTURE]):
        by_symbol.setdefault(tick.symbol, []).append(tick)
        river.process(tick)
        sign.process(tick)
    assert a == b and len(a) == river.score.n == sign.score.n > 100
    for sym, seq, ts in a[:50]:
        trigger = by_symbol[sym][seq - 1]  # seq numbers a symbol's ticks from 1
        assert isinstance(trigger, Trade) and trigger.ts == ts


def test_synthetic_is_deterministic_and_readable(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl.gz", events=3_000, symbols=5, seed=11)
    b = write(tmp_path / "b.jsonl.gz", events=3_000, symbols=5, seed=11)
    c = write(tmp_path / "c.jsonl.gz", events=3_000, symbols=5, seed=12)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    rejects: list[Reject] = []
    stats = ReaderStats()
    ticks = list(read_ticks([a], on_reject=rejects.append, stats=stats))
    assert rejects == [] and stats.rejected == 0
    assert len(ticks) == 3_000
    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)
    trades = sum(isinstance(t, Trade) for t in ticks)
    assert 0.1 < trades / len(ticks) < 0.3
    assert len({t.symbol for t in ticks}) == 5


def test_backtest_table_shows_both_ratios_and_both_accuracies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Catches: the one-process ratio or either side's accuracy dropped from the printed table,
    # or a ratio computed against the wrong run.
    from bench.bench_backtest import QuorumRun, Row, print_table
    from quorum.baseline import BaselineResult

    def q(ev_s: float) -> QuorumRun:
        score = {"n_scored": 900, "accuracy": 0.5812, "log_loss": 0.6822, "brier": 0.2446}
        return QuorumRun(1000, 1000 / ev_s, ev_s, score, 100_000, [(1000, 100_000)])

    base = BaselineResult(
        1000, 200, 0.1, 10_000.0, {"n_scored": 800, "accuracy": 0.4975, "log_loss": 0.7298}
    )
    print_table([Row("x", q(20_000.0), base, q(15_000.0), [(2.0, 1.5)])], 1)
    out = capsys.readouterr().out
    header, line = (ln.split() for ln in out.splitlines()[3:5])
    assert header[:1] == ["dataset"] and "acc" in header and "1-proc" in header
    assert line[1:] == ["1,000", "20,000", "10,000", "2.00", "15,000", "1.50", "58.12%",
                        "49.75%", "0.6822", "0.7298", "900", "800"]  # fmt: skip
    assert "2.00 / 1.50" in out


def test_latency_stamp_resolution_is_measured_and_printed() -> None:
    # Catches: the latency report losing its stamping resolution, or a clock step of 0 / junk.
    from bench.bench_kafka import StampResolution, clock_step_ns

    step = clock_step_ns(10_000)
    assert 0 < step < 1_000_000  # perf_counter_ns advances in well under a millisecond
    r = StampResolution(10.0, [10.1, 10.2, 12.5], [40.0, 60.0, 300.0], "clk", 1.0, step)
    text = "\n".join(r.summary())
    assert "poll(10 ms)" in text and "max 12.50 ms" in text and "overrun 2.50 ms" in text
    assert "max 300 us" in text and f"smallest step measured {step} ns" in text
