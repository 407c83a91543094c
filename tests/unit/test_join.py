"""The vote join: complete ticks in order, timeouts for missing stages, late votes dropped."""

from __future__ import annotations

from agents.join import VoteJoin
from models.records import Vote

STAGES = ("a", "b", "c")


def v(stage: str, seq: int, symbol: str = "X") -> Vote:
    return Vote(stage, f"{stage}:m", 1, symbol, seq, seq * 10, 0.5)


def seqs(batches: list[list[Vote]]) -> list[tuple[int, tuple[str, ...]]]:
    return [(b[0].seq, tuple(x.stage for x in b)) for b in batches]


def test_releases_complete_ticks_in_order_whatever_the_interleaving() -> None:
    j = VoteJoin(STAGES, timeout_s=5)
    out = []
    for vote in [v("b", 1), v("a", 2), v("a", 1), v("c", 2), v("b", 2), v("c", 1)]:
        out += j.add(vote, now=0.0)
    assert seqs(out) == [(1, STAGES), (2, STAGES)]
    assert j.waiting() == 0


def test_a_complete_tick_waits_behind_an_incomplete_earlier_one() -> None:
    j = VoteJoin(STAGES, timeout_s=5)
    assert j.add(v("a", 1), 0.0) == []
    for s in STAGES:
        assert j.add(v(s, 2), 1.0) == []
    assert j.expire(5.5) == []  # b and c voted (for 2) at 1.0: alive, only behind on 1
    assert seqs(j.expire(6.0)) == [(1, ("a",)), (2, STAGES)]  # silent for 5 s: given up
    assert j.timed_out == 1
    assert j.add(v("b", 1), 7.0) == [] and j.late == 1


def test_a_stage_that_is_behind_but_voting_is_waited_for() -> None:
    j = VoteJoin(STAGES, timeout_s=5)
    for s in ("a", "b"):  # a and b are far ahead: done with X and Y
        assert j.add(v(s, 1), 0.0) == []
        for seq in range(1, 60):
            assert j.add(v(s, seq, symbol="Y"), 0.0) == []
    for t in range(1, 60):  # c works through its backlog of Y: slow, not dead
        assert seqs(j.add(v("c", t, symbol="Y"), float(t))) == [(t, STAGES)]
        assert j.expire(float(t)) == []
    assert seqs(j.add(v("c", 1), 60.0)) == [(1, STAGES)]
    assert j.timed_out == 0


def test_symbols_are_independent() -> None:
    j = VoteJoin(("a",), timeout_s=1)
    assert seqs(j.add(v("a", 1, "X"), 0)) == [(1, ("a",))]
    assert seqs(j.add(v("a", 1, "Y"), 0)) == [(1, ("a",))]


def test_restored_joins_do_not_count_downtime_against_the_timeout() -> None:
    from models.state import MemoryStateStore

    store = MemoryStateStore()
    j = VoteJoin(STAGES, timeout_s=5, store=store)
    assert j.add(v("a", 1), now=0.0) == []
    restarted = VoteJoin(STAGES, timeout_s=5, store=store)  # same saved state, new process
    assert restarted.state("X").pending  # the waiting tick came back
    assert restarted.expire(now=1000.0) == []  # its clock restarts now, not at 0.0
    assert seqs(restarted.expire(now=1005.0)) == [(1, ("a",))]


def test_the_waiting_ticks_of_a_symbol_are_bounded_and_the_oldest_is_decided() -> None:
    # catches: an unbounded pending map (a dead or far-behind stage grows memory without end),
    # and a bound that drops the oldest tick silently instead of deciding it with its votes
    j = VoteJoin(STAGES, timeout_s=1e9, max_waiting=3)  # a timeout that never fires
    out = []
    for seq in range(1, 11):  # stage c never votes: every tick stays incomplete
        out += j.add(v("a", seq), 0.0)
        out += j.add(v("b", seq), 0.0)
        assert len(j.state("X").pending) <= 3
    assert j.waiting() == 3
    assert j.overflowed == 7 and j.timed_out == 0
    assert seqs(out) == [(seq, ("a", "b")) for seq in range(1, 8)]  # oldest first, none lost
    assert sorted(j.state("X").pending) == [8, 9, 10]
    assert j.add(v("c", 5), 0.0) == [] and j.late == 1  # decided already: a late vote
    # a new tick forces out the oldest again; a complete one waits behind incomplete ones
    out2 = [b for s in STAGES for b in j.add(v(s, 11), 0.0)]
    assert seqs(out2) == [(8, ("a", "b"))]
    assert sorted(j.state("X").pending) == [9, 10, 11] and j.overflowed == 8


def test_the_bound_is_per_symbol() -> None:
    # catches: a bound on the total that lets one busy symbol force out another's ticks
    j = VoteJoin(STAGES, timeout_s=1e9, max_waiting=2)
    for seq in (1, 2):
        assert j.add(v("a", seq, "Y"), 0.0) == []
    for seq in range(1, 6):
        j.add(v("a", seq, "X"), 0.0)
    assert len(j.state("Y").pending) == 2 and len(j.state("X").pending) == 2
    assert j.overflowed == 3


def test_the_default_bound_never_cuts_a_normal_run() -> None:
    # catches: a default so small that an ordinary lag between stages changes signals
    from config.runtime import RuntimeConfig

    bound = RuntimeConfig().join.max_waiting
    assert bound == VoteJoin(STAGES, timeout_s=1).max_waiting == 100_000


def test_a_stall_of_the_driver_itself_times_nothing_out() -> None:
    # catches: a worker frozen (SIGSTOP, a VM pause) that wakes and decides every waiting tick
    # without the votes still on their way: signals that differ from the backtest's
    j = VoteJoin(("a", "b"), timeout_s=10.0)
    assert j.add(v("a", 1), now=100.0) == []
    j.shift(30.0)  # the driver did not run from 100 to 130
    assert j.expire(now=131.0) == []  # only 1 s of real waiting
    assert [[v.stage for v in t] for t in j.expire(now=140.5)] == [["a"]]  # 10.5 s: silent
    assert j.timed_out == 1
