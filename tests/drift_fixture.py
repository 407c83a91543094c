"""Real prequential outcomes for the drift tests: ``tests/fixtures/drift_outcomes.json.gz``.

Each stage's (prediction time, P(up) it voted, realised up) of the default config on the bundled
sample ``data/binance/spot`` (both symbols), exactly as the drift monitor saw them. The tests
resample these real blocks (a stationary stream) and flip their labels (a sign flip), so they
judge the detector on real skill and real noise without a minutes-long backtest. Rewrite with

    python -m tests.drift_fixture
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from agents.pipeline import Pipeline
from config.settings import load_config
from streams.readers import read_ticks

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "drift_outcomes.json.gz"

Outcomes = dict[str, list[tuple[int, float, bool]]]  # "stage/SYMBOL" -> (ts, p_up, up)


def collect() -> Outcomes:
    cfg = load_config(None)
    assert cfg.drift is not None, "the default config monitors drift"
    pipeline = Pipeline(cfg)
    seen: Outcomes = {}
    for stage in pipeline.stages:  # record what each monitor is given, as it is given
        watch = stage.watch

        def spy(st, symbol, deadline, example, label, now, _watch=watch, _stage=stage):  # type: ignore[no-untyped-def]
            p = example[2]
            if p is not None:
                ts = deadline - cfg.horizon_ns
                seen.setdefault(f"{_stage.name}/{symbol}", []).append(
                    (ts, round(p, 6), label.value == "up")
                )
            _watch(st, symbol, deadline, example, label, now)

        stage.watch = spy  # type: ignore[method-assign]
    files = sorted((ROOT / "data" / "binance" / "spot").glob("*.gz"))
    for tick in read_ticks(files):
        pipeline.process(tick)
    return seen


def load() -> Outcomes:
    raw = orjson.loads(gzip.decompress(FIXTURE.read_bytes()))
    return {k: [(int(t), float(p), bool(u)) for t, p, u in v] for k, v in raw.items()}


if __name__ == "__main__":
    data = collect()
    FIXTURE.write_bytes(gzip.compress(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), mtime=0))
    for key, rows in sorted(data.items()):
        print(f"{key}: {len(rows)} outcomes")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
