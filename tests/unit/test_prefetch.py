"""The prefetching reader gives exactly what the in-process reader gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.records import Reject
from streams.prefetch import read_ticks_prefetched
from streams.readers import ReaderError, ReaderStats, read_ticks
from tests.conftest import SAMPLE_FILES


def test_same_ticks_rejects_and_stats(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,symbol,price,size\n1723161300000000000,X,1,1\n1723161300000000001,X,-1,1\n")
    files = [*SAMPLE_FILES, bad]
    r1: list[Reject] = []
    r2: list[Reject] = []
    s1, s2 = ReaderStats(), ReaderStats()
    plain = list(read_ticks(files, on_reject=r1.append, stats=s1, symbols=["BTCUSDT", "X"]))
    fetched = list(
        read_ticks_prefetched(files, on_reject=r2.append, stats=s2, symbols=["BTCUSDT", "X"])
    )
    assert fetched == plain and len(plain) > 10_000
    assert r1 == r2 and len(r1) == 1
    assert s1 == s2


def test_errors_cross_the_process_boundary(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match="missing"):
        list(read_ticks_prefetched([tmp_path / "missing.gz"]))
