"""Every record we write validates against its published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from models.records import Label, Outcome, Quote, Trade, Vote
from quorum import run_backtest
from streams.codecs import encode_tick, encode_tick_batch, encode_vote
from tests.conftest import SAMPLE_FILES
from tests.schemas import SCHEMAS, schema_validator


def test_every_schema_has_its_file_name_as_id() -> None:
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        assert json.loads(path.read_text())["$id"] == f"quorum/{path.name}"


def test_ticks_and_votes_match_their_schemas() -> None:
    tick = schema_validator("tick")
    t0 = 1_723_161_255_000_000_000
    for t in (
        Trade("A", t0, 2.0, 3.0, "buy"),
        Trade("A", t0, 2.0, 3.0),
        Quote("A", t0, 1.0, 2.0, 0, 1),
    ):
        tick.validate(orjson.loads(encode_tick(t)))
    with pytest.raises(jsonschema.ValidationError):
        tick.validate({"type": "trade", "symbol": "A", "ts": t0, "price": -1, "size": 1})
    with pytest.raises(jsonschema.ValidationError):  # 1 ns after the epoch: out of range
        tick.validate({"type": "trade", "symbol": "A", "ts": 1, "price": 1, "size": 1})
    vote = Vote("s", "s:1", 3, "A", 9, 1, None, (Outcome(2, Label.UP),))
    schema_validator("vote").validate(orjson.loads(encode_vote(vote)))


def test_tick_batches_match_their_schema() -> None:
    batch = schema_validator("tick-batch")
    t0 = 1_723_161_255_000_000_000
    ticks = [Trade("A", t0, 2.0, 3.0, "buy"), Quote("B", t0, 1.0, 2.0, 0, 1), Trade("A", t0, 2, 1)]
    batch.validate(orjson.loads(encode_tick_batch(ticks)))
    batch.validate(orjson.loads(encode_tick_batch(ticks[:1])))
    good = orjson.loads(encode_tick(ticks[0]))
    for bad in (
        [],  # minItems 1
        good,  # a single tick is the other form, not a batch
        [good, {**good, "price": "2"}],  # one bad item fails the record as a whole
        [good, [good]],  # no nesting
    ):
        with pytest.raises(jsonschema.ValidationError):
            batch.validate(bad)


def test_backtest_outputs_match_their_schemas(tmp_path: Path) -> None:
    run_backtest(SAMPLE_FILES, out_dir=tmp_path, end_ns=1_723_161_300_000_000_000, prefetch=False)
    signal = schema_validator("signal")
    lines = (tmp_path / "signals.jsonl").read_bytes().splitlines()
    assert lines
    for line in lines[:: max(1, len(lines) // 200)]:
        signal.validate(orjson.loads(line))
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,symbol,price,size\n1,A,x,1\n")
    run_backtest([bad], out_dir=tmp_path / "bad")
    reject = schema_validator("reject")
    rows = (tmp_path / "bad" / "rejects.jsonl").read_bytes().splitlines()
    assert len(rows) == 1
    reject.validate(orjson.loads(rows[0]))
