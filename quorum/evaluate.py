"""``quorum evaluate``: quorum against its members and baselines, with honest standard errors.

Per dataset, on the same ticks (stripped to trades first with ``trades_only``):

- quorum's backtest, its scored outcomes collected through ``run_backtest(on_scored=...)``;
- the River baseline and the tick-sign baseline (:mod:`quorum.baseline`), labelled by the same
  :class:`~models.labels.Labeler` settings (reference price, horizon, dead band);
- a fair coin (p = 0.5) on quorum's outcomes.

Every model is scored on its own outcomes: n, log-loss, accuracy, Brier, ECE (10 equal-mass
bins, :func:`quorum.stats.ece`). Each comparison (ensemble − best member, − River, − tick-sign,
− coin) is the mean difference of per-outcome log-losses (clipped at 1e-6, as
:class:`quorum.metrics.BinaryScore`) over the outcomes both scored, matched by (symbol, seq):
seq numbers a symbol's ticks from 1 in the pipeline and in both baselines alike. Overlapping
horizons correlate neighbouring outcomes, so its standard error is Newey–West with lag =
:func:`quorum.stats.horizon_lag` of the matched outcomes (in trigger-time order), and n_eff is
the sample size an iid series with that standard error would have.
"""

from __future__ import annotations

import glob
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.voting import Scored
from config.settings import PipelineConfig, load_config
from quorum.backtest import StripStats, run_backtest, strip_to_trades
from quorum.baseline import Baseline, TickSignBaseline
from quorum.metrics import BinaryScore
from quorum.stats import ece, effective_n, hac_se, horizon_lag
from streams.readers import read_ticks

__all__ = ["Dataset", "evaluate", "evaluate_dataset", "parse_dataset", "render", "strip_to_trades"]

_EPS = 1e-6  # as quorum.metrics.BinaryScore
ROOT = Path(__file__).resolve().parent.parent
NAMED: dict[str, str] = {"sample": "data/binance/spot/*.gz"}
"""Named datasets: a glob relative to the working directory, else to the checkout."""
ECE_BINS = 10

Key = tuple[str, int]  # (symbol, seq)
Outcome = tuple[int, float, bool]  # (ts of the trigger, P(up), up)


@dataclass(frozen=True)
class Dataset:
    name: str
    paths: tuple[Path, ...]


def _expand(part: str) -> list[Path]:
    p = Path(part)
    if p.is_dir():
        return sorted(p.glob("*.gz"))
    if any(c in part for c in "*?["):
        found = sorted(glob.glob(part))
        if not found and not p.is_absolute():
            found = sorted(glob.glob(str(ROOT / part)))
        return [Path(f) for f in found]
    return [p]


def parse_dataset(spec: str) -> Dataset:
    """``name=PATH_OR_GLOB[,PATH_OR_GLOB...]``, a named set (``sample``), or one bare path,
    glob or directory (a directory means its ``*.gz``; it names the dataset).

    Raises ValueError when nothing matches.
    """
    name, sep, rest = spec.partition("=")
    if sep and name and "/" not in name:
        parts = [r for r in rest.split(",") if r]
    elif spec in NAMED:
        name, parts = spec, [NAMED[spec]]
    else:
        p = Path(spec)
        name = p.name if p.is_dir() else spec
        parts = [spec]
    paths = [f for part in parts for f in _expand(part)]
    if not paths:
        raise ValueError(f"dataset {spec!r}: no files match")
    return Dataset(name, tuple(paths))


def _loss(p: float, up: bool) -> float:
    q = min(max(p, _EPS), 1.0 - _EPS)
    return -math.log(q if up else 1.0 - q)


def _scores(outcomes: Iterable[tuple[float, bool]]) -> dict[str, Any]:
    score = BinaryScore()
    ps: list[float] = []
    ys: list[bool] = []
    for p, up in outcomes:
        score.update(p, up)
        ps.append(p)
        ys.append(up)
    out = {
        "n": score.n,
        "log_loss": score.log_loss_sum / score.n if score.n else None,
        "accuracy": score.hits / score.n if score.n else None,
        "brier": score.brier_sum / score.n if score.n else None,
        "ece": ece(ps, ys, ECE_BINS) if ps else None,
    }
    return out


def _difference(
    label: str, a: dict[Key, Outcome], b: dict[Key, Outcome], horizon_ns: int
) -> dict[str, Any]:
    keys = sorted(a.keys() & b.keys(), key=lambda k: (a[k][0], k))
    d = [_loss(a[k][1], a[k][2]) - _loss(b[k][1], b[k][2]) for k in keys]
    ts = [a[k][0] for k in keys]
    lag = horizon_lag(ts, horizon_ns)
    mismatched = sum(1 for k in keys if a[k][2] != b[k][2])
    if not d:
        return {"label": label, "n": 0, "only_a": len(a), "only_b": len(b), "label_mismatch": 0,
                "lag": 0, "mean": None, "hac_se": None, "n_eff": None, "z": None}  # fmt: skip
    mean = sum(d) / len(d)
    se = hac_se(d, lag)
    return {
        "label": label,
        "n": len(d),
        "only_a": len(a) - len(d),  # scored by the ensemble only
        "only_b": len(b) - len(d),
        "label_mismatch": mismatched,  # same outcome, different up/down: should be 0
        "lag": lag,
        "mean": mean,
        "hac_se": se,
        "n_eff": effective_n(d, lag),
        "z": mean / se if se > 0 else None,
    }


def evaluate_dataset(
    ds: Dataset, cfg: PipelineConfig, *, trades_only: bool = False
) -> dict[str, Any]:
    """One dataset: the models' scores, the loss differences with HAC SEs, weight stability."""
    quorum: dict[Key, Scored] = {}

    def keep(sc: Scored) -> None:
        quorum[(sc.symbol, sc.seq)] = sc

    t0 = time.perf_counter()
    result = run_backtest(
        ds.paths, config=cfg, keep_signals=False, on_scored=keep, trades_only=trades_only
    )
    t_quorum = time.perf_counter() - t0

    river: dict[Key, Outcome] = {}
    sign: dict[Key, Outcome] = {}
    base = Baseline(
        cfg.horizon_s,
        cfg.dead_band_bps,
        on_scored=lambda sym, seq, ts, p, up: river.__setitem__((sym, seq), (ts, p, up)),
    )
    tsb = TickSignBaseline(
        cfg.horizon_s,
        cfg.dead_band_bps,
        on_scored=lambda sym, seq, ts, p, up: sign.__setitem__((sym, seq), (ts, p, up)),
    )
    t0 = time.perf_counter()
    ticks: Iterable[Any] = read_ticks(
        list(ds.paths), tolerance_ns=cfg.reader.reorder_tolerance_ms * 1_000_000
    )
    strip = StripStats()
    if trades_only:
        ticks = strip_to_trades(ticks, strip)
    for tick in ticks:
        base.process(tick)
        tsb.process(tick)
    t_baselines = time.perf_counter() - t0

    stage_names = [s.name for s in cfg.stages]
    ens: dict[Key, Outcome] = {k: (s.ts, s.p_ensemble, s.up) for k, s in quorum.items()}
    stages: dict[str, dict[Key, Outcome]] = {n: {} for n in stage_names}
    for k, s in quorum.items():
        for n, p in s.p_stages.items():
            if p is not None and n in stages:
                stages[n][k] = (s.ts, p, s.up)
    coin: dict[Key, Outcome] = {k: (o[0], 0.5, o[2]) for k, o in ens.items()}

    models: dict[str, dict[str, Any]] = {"ensemble": _scores((o[1], o[2]) for o in ens.values())}
    for n in stage_names:
        models[n] = _scores((o[1], o[2]) for o in stages[n].values())
    models["tick-sign"] = _scores((o[1], o[2]) for o in sign.values())
    models["River baseline"] = _scores((o[1], o[2]) for o in river.values())
    models["coin"] = _scores((o[1], o[2]) for o in coin.values())

    scored_stages = [n for n in stage_names if models[n]["log_loss"] is not None]
    best = min(scored_stages, key=lambda n: models[n]["log_loss"]) if scored_stages else None
    h = cfg.horizon_ns
    diffs = []
    if best is not None:
        diffs.append(_difference(f"ensemble − best member ({best})", ens, stages[best], h))
    diffs += [
        _difference("ensemble − River baseline", ens, river, h),
        _difference("ensemble − tick-sign", ens, sign, h),
        _difference("ensemble − coin", ens, coin, h),
    ]
    report = result.report
    out: dict[str, Any] = {
        "name": ds.name,
        "inputs": [str(p) for p in ds.paths],
        "trades_only": trades_only,
        "horizon_s": cfg.horizon_s,
        "dead_band_bps": cfg.dead_band_bps,
        "config_hash": report["config_hash"],
        "events": report["events"],
        "trades": report["trades"],
        "best_member": best,
        "models": models,
        "differences": diffs,
        "weights_stability": report["weights_stability"],
        "elapsed_s": {"quorum": round(t_quorum, 3), "baselines": round(t_baselines, 3)},
        "quorum_events_per_s": report["events_per_s"],
    }
    if trades_only:
        out["stripped"] = report["trades_only"]
        out["stripped_baselines"] = strip.as_dict()
    return out


def evaluate(
    datasets: Sequence[Dataset],
    *,
    config: PipelineConfig | Path | str | None = None,
    horizon_s: float | None = None,
    trades_only: bool = False,
) -> dict[str, Any]:
    """Every dataset in turn; JSON-ready."""
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    if horizon_s is not None:
        cfg = cfg.with_overrides(horizon_s=horizon_s)
    return {
        "config_name": cfg.name,
        "config_hash": cfg.config_hash(),
        "ece_bins": ECE_BINS,
        "datasets": [evaluate_dataset(ds, cfg, trades_only=trades_only) for ds in datasets],
    }


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def render(result: dict[str, Any], console: Console) -> None:
    """The tables ``quorum evaluate`` prints."""
    for ds in result["datasets"]:
        kind = ", trades only (no quotes, no sides)" if ds["trades_only"] else ""
        t = Table(
            title=f"{ds['name']}: {len(ds['inputs'])} files, {ds['events']:,} events, "
            f"horizon {ds['horizon_s']:g} s{kind}",
            title_justify="left",
        )
        for col in ("model", "n", "log-loss", "accuracy", "Brier", f"ECE({result['ece_bins']})"):
            t.add_column(col, justify="left" if col == "model" else "right")
        coin_ll = math.log(2.0)
        for name, s in ds["models"].items():
            ll = s["log_loss"]
            style = "" if ll is None else "green" if ll < coin_ll - 1e-12 else "red"
            t.add_row(
                name,
                _f(s["n"]),
                f"[{style}]{_f(ll)}[/]" if style else _f(ll),
                _f(s["accuracy"]),
                _f(s["brier"]),
                _f(s["ece"]),
                style="bold" if name == "ensemble" else "dim" if name == "coin" else None,
            )
        console.print(t)
        d = Table(
            title="per-outcome log-loss differences (negative: the ensemble is better), "
            "HAC (Newey–West) SE",
            title_justify="left",
        )
        for col in ("difference", "n", "mean", "HAC SE", "z", "lag", "n_eff"):
            d.add_column(col, justify="left" if col == "difference" else "right")
        for r in ds["differences"]:
            d.add_row(
                r["label"],
                _f(r["n"]),
                _f(r["mean"], 5),
                _f(r["hac_se"], 5),
                _f(r["z"], 2),
                _f(r["lag"]),
                _f(r["n_eff"], 0) if r["n_eff"] is not None else "-",
            )
        console.print(d)
        ws = ds["weights_stability"]
        per = ", ".join(f"{k} {_f(v, 3)}" for k, v in ws["per_symbol"].items())
        console.print(
            f"weights' stability: largest change of any stage weight within {ws['window_s']:g} s, "
            f"median over {ws['minutes']:,} symbol-minutes {_f(ws['median'], 3)} ({per})"
        )
        if ds["trades_only"]:
            s = ds["stripped"]
            console.print(
                f"stripped: {s['quotes_dropped']:,} quotes dropped, "
                f"{s['sides_removed']:,} sides removed"
            )
        e = ds["elapsed_s"]
        console.print(
            f"[dim]time: quorum {e['quorum']:.1f} s ({_f(ds['quorum_events_per_s'], 0)} "
            f"events/s), baselines {e['baselines']:.1f} s[/]\n"
        )
