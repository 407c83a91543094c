"""The hash-chained audit log, by hand: each tampering names the first bad record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from models.audit import GENESIS, AuditChain, record_hash, verify


def chain(n: int = 5) -> list[bytes]:
    c = AuditChain()
    return [
        c.line(c.append("signal", ts=1_000 + i, action="BUY", p=0.5 + i / 100)) for i in range(n)
    ]


def test_records_link_by_the_sha256_of_their_sorted_json() -> None:
    lines = chain(3)
    recs = [orjson.loads(x) for x in lines]
    assert recs[0]["prev"] == GENESIS and [r["index"] for r in recs] == [0, 1, 2]
    body = {k: v for k, v in recs[1].items() if k != "hash"}
    by_hand = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert recs[1]["hash"] == by_hand == record_hash(recs[1])
    assert recs[2]["prev"] == recs[1]["hash"]
    v = verify(lines, head=recs[2]["hash"])
    assert v.ok and v.records == 3 and v.head == recs[2]["hash"]


def test_a_flipped_byte_names_its_record() -> None:
    lines = chain()
    lines[2] = lines[2].replace(b'"BUY"', b'"BUZ"')
    v = verify(lines)
    assert (v.ok, v.bad_index) == (False, 2) and "changed" in v.reason


def test_a_deleted_record_names_the_position_it_left() -> None:
    lines = chain()
    del lines[2]
    v = verify(lines)
    assert (v.ok, v.bad_index) == (False, 2) and "index 3" in v.reason


def test_an_inserted_copy_and_a_reordering_are_caught_where_they_start() -> None:
    lines = chain()
    assert verify([*lines[:2], lines[1], *lines[2:]]).bad_index == 2
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    assert verify(swapped).bad_index == 1


def test_a_cut_or_a_rewritten_log_fails_only_against_the_kept_head() -> None:
    lines = chain()
    head = orjson.loads(lines[-1])["hash"]
    cut = lines[:3]
    assert verify(cut).ok  # a clean prefix is a valid log on its own...
    v = verify(cut, head=head)  # ...but not the log whose head was kept
    assert (v.ok, v.bad_index) == (False, 3) and "cut off" in v.reason
    forged = AuditChain()  # recomputing every hash after an edit
    redone = [forged.line(forged.append("signal", ts=1, action="SELL")) for _ in range(5)]
    assert verify(redone).ok and not verify(redone, head=head).ok


def test_the_chain_owns_its_link_fields() -> None:
    import pytest

    with pytest.raises(ValueError, match="index"):
        AuditChain().append("x", index=3)


@settings(max_examples=100, derandomize=True)
@given(st.data())
def test_any_byte_change_is_caught_or_changes_nothing(data: st.DataObject) -> None:
    lines = chain(4)
    blob = b"".join(lines)
    pos = data.draw(st.integers(0, len(blob) - 2))  # not the final newline
    new = data.draw(st.integers(0, 255).filter(lambda b: b != blob[pos]))
    bad = blob[:pos] + bytes([new]) + blob[pos + 1 :]
    v = verify(bad.split(b"\n")[:-1] if bad.endswith(b"\n") else bad.split(b"\n"))
    if v.ok:  # only a change JSON does not see (none in these lines) may pass
        assert [orjson.loads(x) for x in bad.splitlines()] == [orjson.loads(x) for x in lines]


def test_a_backtest_writes_a_verifiable_log_of_its_run(tmp_path: Path) -> None:
    """Catches a log that does not verify against its kept head, misses a model or the config,
    samples signals off by one, or whose end does not seal the signals file."""
    from quorum import run_backtest
    from tests.conftest import SAMPLE_FILES

    rep = run_backtest(SAMPLE_FILES[:1], out_dir=tmp_path, prefetch=False, audit_signal_every=7)
    report, lines = rep.report, (tmp_path / "audit.jsonl").read_bytes().splitlines()
    v = verify(lines, head=report["audit"]["head"])
    assert v.ok and v.records == report["audit"]["records"] == len(lines)
    recs = [orjson.loads(x) for x in lines]
    kinds = [r["kind"] for r in recs]
    assert kinds[:2] == ["config_load", "run_start"] and kinds[-1] == "run_end"
    assert recs[0]["config_hash"] == report["config_hash"]
    symbols = {r["symbol"] for r in recs if r["kind"] == "model_created"}
    created = [r for r in recs if r["kind"] == "model_created"]
    assert len(created) == len(symbols) * len(report["stages"])
    assert len({r["model_id"] for r in created}) == len(created)  # one id per stage x symbol
    n = report["signals"]["total"]
    sampled = [r for r in recs if r["kind"] == "signal"]
    assert len(sampled) == (n + 6) // 7  # signals 1, 8, 15, ...
    ids = [orjson.loads(x)["id"] for x in (tmp_path / "signals.jsonl").read_bytes().splitlines()]
    assert [r["id"] for r in sampled] == ids[::7]
    end = recs[-1]
    sealed = hashlib.sha256((tmp_path / "signals.jsonl").read_bytes()).hexdigest()
    assert (end["signals"], end["signals_sha256"]) == (n, sealed)


def test_quorum_audit_verify_exit_codes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from quorum.cli import app

    lines = chain(4)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"".join(lines))
    head = orjson.loads(lines[-1])["hash"]
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", str(log), "--head", head])
    assert ok.exit_code == 0 and "ok: 4 records" in ok.output
    log.write_bytes(b"".join([lines[0], lines[2], lines[3]]))  # record 1 deleted
    bad = runner.invoke(app, ["audit", "verify", str(log), "--head", head])
    assert bad.exit_code == 1 and "BAD at record 1" in bad.output
    (tmp_path / "report.json").write_bytes(orjson.dumps({"audit": {"head": "f" * 64}}))
    log.write_bytes(b"".join(lines))  # intact, but not the log report.json sealed
    cut = runner.invoke(app, ["audit", "verify", str(log)])
    assert (cut.exit_code == 1 and "report.json" not in cut.output) or "BAD" in cut.output
