"""The worker benchmark's own arithmetic: what it counts, how it finds gaps and assignments.

No timing is asserted here (numbers are the benchmark's job, never a test's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package; import it from the checkout
    sys.path.insert(0, str(ROOT))

from bench.bench_kafka import pipeline_state_keys  # noqa: E402
from bench.bench_worker import (  # noqa: E402
    max_gap_ms,
    pack_all,
    parse_assignments,
    seqs,
    settled_s,
    window_ticks,
)
from models.records import Quote, Tick, Trade  # noqa: E402
from streams.partitioner import partition_for  # noqa: E402

T0 = 1_723_161_600_000_000_000


def trade(sym: str, i: int) -> Trade:
    return Trade(sym, T0 + i, 100.0, 1.0, "buy")


def quote(sym: str, i: int) -> Quote:
    return Quote(sym, T0 + i, 99.0, 101.0, 1.0, 1.0)


def test_window_ticks_counts_each_symbols_first_to_last_trade() -> None:
    ticks: list[Tick] = [
        quote("A", 0),  # before A's first trade: not in the window
        trade("A", 1),
        quote("B", 2),  # before B's first trade
        quote("A", 3),
        trade("B", 4),
        trade("A", 5),
        quote("A", 6),  # after A's last trade
    ]
    # A: its ticks 2..4 (trade, quote, trade) = 3; B: tick 2 only = 1
    assert window_ticks(ticks) == 4
    assert window_ticks([quote("A", 0)]) == 0


def test_seqs_number_each_symbols_ticks_from_one() -> None:
    ticks: list[Tick] = [trade("A", 0), quote("B", 1), quote("A", 2), trade("B", 3)]
    assert seqs(ticks) == [("A", 1), ("B", 1), ("A", 2), ("B", 2)]


def test_max_gap_includes_the_window_edges() -> None:
    ms = 1_000_000
    # arrivals at 10, 12, 30 ms in a window [0, 35]: the longest silence is 12 -> 30
    assert max_gap_ms([10 * ms, 12 * ms, 30 * ms], 0, 35 * ms) == (18.0, 12 * ms)
    # nothing arrives: the whole window is silent, from its start
    assert max_gap_ms([], 5 * ms, 9 * ms) == (4.0, 5 * ms)
    # arrivals outside the window are ignored
    assert max_gap_ms([1 * ms, 100 * ms], 10 * ms, 20 * ms) == (10.0, 10 * ms)


def test_settled_is_the_end_of_the_last_slow_second_not_a_lone_spike() -> None:
    s = 1_000_000_000
    stop, end = 100 * s, 130 * s
    calm = [(stop + k * s // 10, 10.0) for k in range(300)]  # 30 s of 10 ms, 10 a second
    assert settled_s(calm, stop, end, 30.0) == 0.0
    spike = [*calm, (stop + 20 * s, 500.0)]  # one slow signal in a calm second
    assert settled_s(spike, stop, end, 30.0) == 0.0
    slow_start = [(a, 900.0 if a < stop + 4 * s else ms) for a, ms in calm]
    assert settled_s(slow_start, stop, end, 30.0) == 4.0
    slow_end = [(a, 900.0 if a > stop + 25 * s else ms) for a, ms in calm]
    assert settled_s(slow_end, stop, end, 30.0) is None  # still slow in the last 2 s
    assert settled_s([(stop - s, 900.0)], stop, end, 30.0) == 0.0  # before the stop: ignored


def test_parse_assignments_reads_the_workers_log_lines() -> None:
    log = "\n".join(
        [
            "[2026-12-02 00:24:45,132] [1] [INFO] Setting newly assigned partitions",
            "[2026-12-02 00:24:46,171] [1] [INFO] assigned partitions: p.ticks [6, 7, 8]",
            "[2026-12-02 00:25:09,308] [1] [INFO] assigned partitions: p.signals [0]; "
            "p.ticks [0, 1, 10, 11]",
            "assigned partitions: p.ticks [3]",  # no timestamp: still read
        ]
    )
    got = parse_assignments(log, "p.ticks")
    assert [parts for _, parts in got] == [[6, 7, 8], [0, 1, 10, 11], [3]]
    assert got[0][0] is not None and got[1][0] is not None
    assert round(got[1][0] - got[0][0], 3) == 23.137
    assert got[2][0] is None


def test_pack_all_keeps_every_tick_on_its_symbols_partition_in_order() -> None:
    ticks: list[Tick] = [trade(s, i) for i in range(450) for s in ("BTCUSDT", "ETHUSDT")]
    packs = pack_all(ticks, 12, size=200)
    assert sum(p.ticks for p in packs) == len(ticks)
    assert max(p.ticks for p in packs) == 200
    by_partition: dict[int, list[int]] = {}
    for p in packs:
        for t in json.loads(p.value):
            assert partition_for(t["symbol"].encode(), 12) == p.partition
            by_partition.setdefault(p.partition, []).append(t["ts"])
    for times in by_partition.values():
        assert times == sorted(times)


class FakeRedis:
    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys

    def scan_iter(self, match: str) -> list[bytes]:
        assert match.endswith("*")
        return [k for k in self.keys if k.startswith(match[:-1].encode())]


def test_pipeline_state_keys_are_the_pipelines_hash_tagged_keys_only() -> None:
    mine = [
        b"quorum:{bench-a}:state:voter/BTCUSDT",
        b"quorum:{bench-a:p3}:state:kernel/BTCUSDT",
        b"quorum:{bench-a:p3}:versions",
    ]
    other = [b"quorum:{bench-ab:p3}:versions", b"quorum:{quorum:p3}:versions"]
    assert pipeline_state_keys(FakeRedis(mine + other), "bench-a") == mine
