"""The vote join: complete ticks in order, timeouts for missing stages, late votes dropped."""

from __future__ import annotations

from agents.join import VoteJoin
from streams.records import Vote

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
