"""Bounded memory: every buffer that grows with input has a bound, and what it drops is counted.

Stage pending labels (``stages.<name>.max_pending``), the voter's pending outcomes
(``voting.max_pending``), chart series (Decimator capacities) and rolling windows: each test
feeds more than the bound and checks the size and the drop counter. The join buffer of the
Kafka voter is tested in ``test_join.py``.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from agents.features import Momentum
from agents.stage import Stage
from agents.voting import Decision, Scored, Voter
from config.settings import PipelineConfig, VotingConfig, load_config
from models.labels import ReferencePrice
from models.records import Action, Label, Outcome, Quote, Signal, StageVote, Trade, Vote
from quorum import run_backtest
from quorum.backtest import ROLLING_WINDOW, _Scoreboard
from quorum.metrics import Decimator, RollingAccuracy
from tests.conftest import S, handmade_ticks

CFG = load_config()
NAMES = tuple(s.name for s in CFG.stages)
T0 = 1_700_000_000 * S


def _cfg(stage_max: int | None = None, voter_max: int | None = None) -> PipelineConfig:
    stages = CFG.stages
    if stage_max is not None:
        stages = tuple(s.model_copy(update={"max_pending": stage_max}) for s in stages)
    voting = CFG.voting
    if voter_max is not None:
        voting = VotingConfig(**{**voting.model_dump(), "max_pending": voter_max})
    return CFG.model_copy(update={"stages": stages, "voting": voting})


def test_stage_pending_labels_are_bounded_by_config_and_drops_counted() -> None:
    cfg = _cfg(stage_max=4)
    stage = Stage(cfg.stages[0], cfg)
    # ten trades within one horizon (5 s): none can be labelled yet
    for i in range(10):
        stage.process(Trade("A", T0 + i * S // 10, 100.0 + i, 1.0, "buy"))
    lab = stage.state("A").labeler
    assert lab.max_pending == 4
    assert [p.seq for p in lab.pending] == [7, 8, 9, 10]  # the oldest went first
    assert lab.dropped == 6
    # only the kept ones are ever labelled and learned
    vote = stage.process(Trade("A", T0 + 10 * S, 200.0, 1.0, "buy"))
    assert vote is not None and [o.seq for o in vote.outcomes] == [7, 8, 9, 10]
    # 7, 8, 9 went up (to 109 at their deadlines); 10 was already at 109: flat, not learned
    assert [o.label for o in vote.outcomes] == [Label.UP] * 3 + [Label.FLAT]
    assert stage.state("A").learned == 3 and lab.dropped == 6


def test_stage_bound_is_per_symbol() -> None:
    cfg = _cfg(stage_max=3)
    stage = Stage(cfg.stages[0], cfg)
    for i in range(5):
        for sym in ("A", "B"):
            stage.process(Trade(sym, T0 + i, 100.0, 1.0, "sell"))
    for sym in ("A", "B"):
        lab = stage.state(sym).labeler
        assert len(lab.pending) == 3 and lab.dropped == 2


def _vote(name: str, seq: int, outcomes: tuple[Outcome, ...] = ()) -> Vote:
    return Vote(name, f"{name}:m", 1, "BTC", seq, T0 + seq, 0.6, outcomes)


def test_voter_pending_outcomes_are_bounded_by_config_and_drops_counted() -> None:
    v = Voter(_cfg(voter_max=5))
    for seq in range(1, 13):
        v.process([_vote(n, seq) for n in NAMES])
        assert len(v.state("BTC").pending) <= 5
    st = v.state("BTC")
    assert list(st.pending) == [8, 9, 10, 11, 12]
    assert st.dropped == 7
    # an outcome for a dropped tick is ignored; one for a kept tick is scored
    d = v.process([_vote(n, 13, (Outcome(3, Label.UP), Outcome(9, Label.DOWN))) for n in NAMES])
    assert [(sc.seq, sc.up) for sc in d.scored] == [(9, False)]
    assert st.dropped == 7 and list(st.pending) == [8, 10, 11, 12, 13]  # 9 was resolved


def test_decimator_stays_under_capacity_evenly_thinned() -> None:
    d = Decimator(capacity=8)
    for i in range(1000):
        d.add(i, float(i))
        assert len(d.ts) < 8 and len(d.values) == len(d.ts)
    assert d.seen == 1000
    assert d.stride == 256  # doubled each time it filled: 8 points -> 4 kept, stride x2
    assert list(d.ts) == [0, 256, 512, 768]  # evenly spaced, the first point kept
    assert d.points == [[t, float(t)] for t in d.ts]


def test_rolling_accuracy_keeps_only_its_window() -> None:
    r = RollingAccuracy(window=10)
    for i in range(100):
        acc = r.update(0.9, up=i >= 90)  # the last ten are hits, the ninety before misses
    assert len(r.hits) == 10 and acc == 1.0 and r.total == 10.0


def _decision(i: int, action: Action) -> Decision:
    ts = T0 + i * S
    stages = tuple(StageVote(n, f"{n}:m", i, 0.6, 1 / 3) for n in NAMES)
    sig = Signal(f"{i:032x}", "BTC", i, ts, 5 * S, action, 0.6, True, stages, (), "h")
    p = dict.fromkeys(NAMES, 0.6)
    scored = (Scored("BTC", i - 1, ts - S, i % 2 == 0, action, 0.6, dict(p)),) if i else ()
    return Decision(sig, scored)


def test_scoreboard_chart_series_are_bounded() -> None:
    board = _Scoreboard(NAMES)
    n = 20_000  # more than every capacity (price and weights 4000, markers 2000)
    actions = (Action.BUY, Action.SELL, Action.HOLD)
    for i in range(n):
        board.tick("BTC", True, 100.0 + i % 7)
        board.decision(_decision(i, actions[i % 3]))
    c = board.charts["BTC"]
    sizes = {
        "price": len(c.price.ts),
        "buy": len(c.buy.ts),
        "sell": len(c.sell.ts),
        **{f"weight {k}": len(w.ts) for k, w in c.weights.items()},
        **{f"rolling {k}": len(r.ts) for k, r in board.rolling_series.items()},
    }
    assert set(sizes) >= {f"weight {k}" for k in NAMES} | {f"rolling {k}" for k in NAMES}
    assert sizes["price"] < c.price.capacity == 4000
    assert sizes["buy"] < c.buy.capacity == 2000 and sizes["sell"] < c.sell.capacity == 2000
    assert all(0 < s < 4000 for s in sizes.values()), sizes
    assert c.price.seen == n and c.buy.seen == c.sell.seen == n // 3 + (n % 3 > 0)
    assert all(len(r.hits) <= ROLLING_WINDOW for r in board.rolling.values())
    assert board.ensemble.n == n - 1  # the scores themselves are counts, not series


def test_momentum_history_is_bounded_by_its_horizon() -> None:
    m, ref = Momentum(), ReferencePrice()
    for i in range(20_000):  # 100 quotes a second for 200 s, the mid moving every time
        t = Quote("A", T0 + i * S // 100, 100.0 + i % 50, 101.0 + i % 50, 1.0, 1.0)
        ref.update(t)
        m.update(t, ref.value)
    # at most the changes within the horizon, plus the one in force at its start
    for h, hist in zip(Momentum.RETURN_HORIZONS_S, m.history, strict=True):
        assert len(hist) <= h * 100 + 2


def _jsonl(path: Path, n: int) -> Path:
    lines = []
    for t in handmade_ticks(n, symbol="BTCUSDT"):
        if isinstance(t, Trade):
            rec = {"type": "trade", "symbol": t.symbol, "ts": t.ts, "price": t.price}
            rec |= {"size": t.size, "side": t.side}
        else:
            rec = {"type": "quote", "symbol": t.symbol, "ts": t.ts, "bid": t.bid, "ask": t.ask}
            rec |= {"bid_size": t.bid_size, "ask_size": t.ask_size}
        lines.append(orjson.dumps(rec))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_report_counts_what_the_bounds_dropped(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "ticks.jsonl", 400)  # a trade every 250 ms: 20 per 5 s horizon
    report = run_backtest([src], config=_cfg(stage_max=8, voter_max=6), prefetch=False).report
    dropped = report["dropped"]
    # every stage holds at most 8 of the ~20 trades of a horizon: the rest are dropped
    assert set(dropped["labels"]) == set(NAMES)
    assert all(n > 300 for n in dropped["labels"].values()), dropped
    assert dropped["voter_pending"] > 300
    # with the default bounds nothing is dropped, and the report says so
    default = run_backtest([src], prefetch=False).report["dropped"]
    assert default == {"labels": dict.fromkeys(NAMES, 0), "voter_pending": 0}
