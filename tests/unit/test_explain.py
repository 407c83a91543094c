"""``quorum explain``: a signal re-derived from its receipt (by hand here), and recomputed from
the raw input bit for bit; a tampered receipt or the wrong config is refused."""

from __future__ import annotations

import math
import re
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from agents.voting import rederive
from config.settings import VotingConfig
from models.records import Action, StageVote
from quorum import run_backtest
from quorum.cli import app

HEAD = Path(__file__).parents[1] / "fixtures" / "btcusdt_head.gz"


def sv(name: str, p: float | None, w: float) -> StageVote:
    return StageVote(name, f"{name}:m", 1, p, w)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_rederive_stack_and_hedge_by_hand() -> None:
    votes = [sv("a", 0.7, 0.6), sv("b", 0.4, 0.4)]
    z = 0.6 * logit(0.7) + 0.4 * logit(0.4)  # 0.50838 - 0.16219 = 0.34619; e^-z = 0.70736
    p, met, action = rederive(votes, VotingConfig())
    assert p == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-15) and met
    assert p == pytest.approx(0.585694, abs=1e-6) and action == Action.BUY  # >= 0.55
    p, _, action = rederive(votes, VotingConfig(method="hedge"))
    assert p == pytest.approx(0.6 * 0.7 + 0.4 * 0.4) and action == Action.BUY  # 0.58
    one = [sv("a", 0.7, 0.6), sv("b", None, 0.4)]  # b abstains: quorum 2 not met
    assert rederive(one, VotingConfig()) == (0.5, False, Action.HOLD)
    p, met, action = rederive(one, VotingConfig(quorum=1, method="hedge"))
    assert (p, met, action) == (pytest.approx(0.7), True, Action.BUY)  # renormalised over a


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("explain")
    result = run_backtest([HEAD], out_dir=out, prefetch=False)
    traded = next(s for s in result.signals if s.action != Action.HOLD)
    return out, traded.id


def test_explain_rederives_and_recomputes_a_signal(run: tuple[Path, str]) -> None:
    out, sid = run
    res = CliRunner().invoke(app, ["explain", sid, "--run", str(out), "--input", str(HEAD)])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and "bit for bit" in res.output


def test_explain_refuses_a_tampered_receipt_and_the_wrong_config(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    out, sid = run
    lines = (out / "signals.jsonl").read_bytes().splitlines()
    forged = []
    for line in lines:
        d = orjson.loads(line)
        if d["id"] == sid:  # the weight of its most decisive stage, nudged after the fact
            top = max(d["stages"], key=lambda v: abs(logit(v["p_up"])) if v["p_up"] else 0.0)
            top["weight"] += 0.01
        forged.append(orjson.dumps(d))
    (tmp_path / "signals.jsonl").write_bytes(b"\n".join(forged) + b"\n")
    res = CliRunner().invoke(app, ["explain", sid, "--run", str(tmp_path), "--json"])
    assert res.exit_code == 1
    doc = orjson.loads(res.stdout)
    assert doc["rederived"] is False and doc["abs_diff"] > 1e-12
    cfg = tmp_path / "other.yaml"  # the default but one threshold: another config hash
    default = (Path(__file__).parents[2] / "config" / "default.yaml").read_text()
    cfg.write_text(re.sub(r"threshold: [0-9.]+", "threshold: 0.61", default, count=1))
    res = CliRunner().invoke(app, ["explain", sid, "--run", str(out), "--config", str(cfg)])
    assert res.exit_code == 2 and "pass the run's --config" in res.output
