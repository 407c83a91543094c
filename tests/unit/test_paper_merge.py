"""The paper trader's event order (agents.paper_merge.Merger): event time, then symbol, then
the symbol's own order; a trigger tick with its signal by seq; waiting for every partition;
duplicates, unpaired ticks, late signals and late ticks counted; pickled state; and a property
against a stable sort of the whole input."""

from __future__ import annotations

import pickle
from collections.abc import Collection

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.paper_merge import Merger, Released
from models.records import Action, Quote, Signal, Tick, Trade

S = 1_000_000_000
TRADES = frozenset({"trade"})
ANOMALIES = ("unpaired", "late_signals", "duplicates", "mismatched_ts", "late_ticks")


def q(sym: str, s: int, price: float = 100.0) -> Quote:
    return Quote(sym, s * S, price - 0.1, price, 1.0, 1.0)


def tr(sym: str, s: int, price: float = 100.0) -> Trade:
    return Trade(sym, s * S, price, 1.0)


def sig(sym: str, seq: int, s: int, sid: str | None = None) -> Signal:
    sid = sid if sid is not None else f"{sym}#{seq}"
    return Signal(sid, sym, seq, s * S, 5 * S, Action.BUY, 0.6, True, (), (), "h")


def merger(*partitions: int, triggers: frozenset[str] = TRADES) -> Merger:
    m = Merger(triggers)
    for p in partitions:
        m.add_partition(p)
    return m


def label(step: Released) -> str:
    """``BTC q@1`` a quote, ``BTC t@2 + BTC#2`` a trade with its signal, ``BTC#1`` a signal
    alone (times in seconds)."""
    tick, signal = step
    parts = []
    if tick is not None:
        parts.append(f"{tick.symbol} {tick.kind[0]}@{tick.ts // S}")
    if signal is not None:
        parts.append(signal.id)
    return " + ".join(parts)


def out(m: Merger, idle: Collection[int] = ()) -> list[str]:
    return [label(step) for step in m.ready(idle)]


def finish(m: Merger) -> list[str]:
    return out(m, idle=m.partitions())


def anomalies(m: Merger) -> dict[str, int]:
    return {k: v for k, v in m.counters.as_dict().items() if k in ANOMALIES and v}


# --- time order across partitions ------------------------------------------------------------


def test_interleaved_partitions_release_only_what_no_partition_can_still_precede() -> None:
    """Catches releasing before the other partition has delivered a later tick, comparing
    ``<`` where ``<=`` is needed (a partition whose newest tick is *at* the event time may
    still deliver another at that time), or ignoring the event's own partition."""
    m = merger(0, 1)
    m.tick(0, q("BTC", 1))
    m.tick(0, q("BTC", 3))
    assert out(m) == []  # partition 1 has delivered nothing: it may still send ETH@0
    m.tick(1, q("ETH", 2))
    assert out(m) == ["BTC q@1"]  # ETH@2 waits: partition 1 may still send another @2
    m.tick(1, q("ETH", 4))
    m.tick(1, q("ETH", 6))
    assert out(m) == ["ETH q@2"]  # BTC@3 waits for partition 0 itself
    m.tick(0, q("BTC", 5))
    assert out(m) == ["BTC q@3", "ETH q@4"]
    assert out(m) == []  # nothing released twice
    assert out(m, idle={0}) == ["BTC q@5"]  # ETH@6 still waits for partition 1
    assert finish(m) == ["ETH q@6"]
    assert m.pending() == 0 and anomalies(m) == {}
    assert (m.counters.ticks, m.counters.signals, m.counters.paired) == (6, 0, 0)


def test_equal_times_wait_for_a_strictly_later_tick() -> None:
    """Partition 1 is at 5 s when BTC@5 could go; releasing it then would put the ADA@5 that
    partition 1 still sends after BTC@5, against the symbol order."""
    m = merger(0, 1)
    m.tick(0, q("BTC", 5))
    m.tick(0, q("BTC", 6))
    m.tick(1, q("ETH", 5))
    assert out(m) == []
    m.tick(1, q("ADA", 5))
    m.tick(1, q("ADA", 7))
    assert out(m) == ["ADA q@5", "BTC q@5", "ETH q@5"]  # BTC@6: partition 0 is at 6
    assert finish(m) == ["BTC q@6", "ADA q@7"]
    assert anomalies(m) == {}


def test_equal_times_go_by_symbol_then_by_arrival() -> None:
    """Catches ordering by arrival across symbols, or by anything but arrival within one."""
    m = merger(0)
    for price, sym in [(1.0, "ETH"), (2.0, "BTC"), (3.0, "ETH"), (4.0, "BTC")]:
        m.tick(0, q(sym, 1, price))
    m.tick(0, q("AAA", 2))
    got = [(t.symbol, t.ask) for t, _ in m.ready() if isinstance(t, Quote)]  # ask = price
    assert got == [("BTC", 2.0), ("BTC", 4.0), ("ETH", 1.0), ("ETH", 3.0)]
    assert finish(m) == ["AAA q@2"]


# --- pairing ---------------------------------------------------------------------------------


def test_trigger_tick_waits_for_its_signal_and_holds_every_symbol_back() -> None:
    """Catches releasing a trade without its signal, releasing later events of other symbols
    past a waiting trade, or treating quotes as triggers."""
    m = merger(0)
    m.tick(0, q("BTC", 1))  # seq 1
    m.tick(0, tr("BTC", 2))  # seq 2: a trigger
    m.tick(0, q("ETH", 3))
    m.tick(0, q("BTC", 4))  # seq 3
    assert out(m, idle={0}) == ["BTC q@1"]
    assert m.pending() == 3
    m.signal(sig("BTC", 2, 2))
    assert out(m, idle={0}) == ["BTC t@2 + BTC#2", "ETH q@3", "BTC q@4"]
    assert m.counters.paired == 1 and anomalies(m) == {} and m.pending() == 0


def test_signal_before_its_tick_waits_and_pairs() -> None:
    """The signals topic read faster than the ticks: the signal for seq 2 is held while seq 1
    (a quote) goes, not released as late nor taken for seq 1's."""
    m = merger(0)
    m.signal(sig("BTC", 2, 2))
    assert out(m, idle={0}) == []
    m.tick(0, q("BTC", 1))
    assert out(m, idle={0}) == ["BTC q@1"]
    m.tick(0, tr("BTC", 2))
    m.tick(0, q("BTC", 3))
    assert out(m, idle={0}) == ["BTC t@2 + BTC#2", "BTC q@3"]
    assert m.counters.paired == 1 and anomalies(m) == {}


def test_signals_pair_per_symbol_by_seq() -> None:
    """Each symbol counts its own ticks (ETH's first trade is ETH seq 1 whatever BTC did, and
    a quote counts too); pairing is by seq, so a signal with a wrong time still pairs with its
    tick, and is counted."""
    m = merger(0)
    m.tick(0, tr("BTC", 1))  # BTC seq 1
    m.tick(0, q("BTC", 2))  # BTC seq 2
    m.tick(0, tr("ETH", 2))  # ETH seq 1
    m.tick(0, tr("BTC", 3))  # BTC seq 3
    m.signal(sig("BTC", 1, 1))
    m.signal(sig("ETH", 1, 2))
    m.signal(sig("BTC", 3, 3))
    assert out(m, idle={0}) == ["BTC t@1 + BTC#1", "BTC q@2", "ETH t@2 + ETH#1", "BTC t@3 + BTC#3"]
    assert anomalies(m) == {} and m.counters.paired == 3
    m = merger(0)
    m.tick(0, tr("BTC", 1))
    m.signal(sig("BTC", 1, 9))
    assert out(m, idle={0}) == ["BTC t@1 + BTC#1"]
    assert anomalies(m) == {"mismatched_ts": 1} and m.counters.paired == 1


def test_duplicate_signals_are_dropped_and_counted() -> None:
    """A worker restart re-sends signals: the same seq again, or one below the last taken in,
    before or after the tick went. None reaches the output twice."""
    m = merger(0)
    m.signal(sig("BTC", 1, 1))
    m.signal(sig("BTC", 1, 1, sid="BTC#1 again"))  # before its tick
    m.tick(0, tr("BTC", 1))
    m.tick(0, tr("BTC", 2))
    m.signal(sig("BTC", 2, 2))
    m.signal(sig("BTC", 1, 1, sid="BTC#1 late"))  # lower than the last taken in
    m.signal(sig("BTC", 2, 2, sid="BTC#2 again"))
    assert m.pending() == 4  # two ticks, two signals
    assert out(m, idle={0}) == ["BTC t@1 + BTC#1", "BTC t@2 + BTC#2"]
    m.signal(sig("BTC", 2, 2, sid="BTC#2 after release"))
    m.tick(0, q("BTC", 3))
    assert out(m, idle={0}) == ["BTC q@3"]
    assert anomalies(m) == {"duplicates": 4} and m.pending() == 0
    assert (m.counters.signals, m.counters.paired) == (6, 2)


def test_overtaken_signal_leaves_its_tick_unpaired() -> None:
    """The signal for seq 1 never came, seq 2's did: the seq 1 trade goes alone (counted)
    instead of waiting forever or taking seq 2's signal, which stays for its own tick."""
    m = merger(0)
    m.tick(0, tr("BTC", 1))
    m.signal(sig("BTC", 2, 2))
    assert out(m, idle={0}) == ["BTC t@1"]
    assert m.counters.unpaired == 1 and m.pending() == 1
    m.tick(0, tr("BTC", 2))
    assert out(m, idle={0}) == ["BTC t@2 + BTC#2"]
    m.signal(sig("BTC", 1, 1))  # now a duplicate: a later one was taken in
    assert out(m, idle={0}) == []
    assert anomalies(m) == {"unpaired": 1, "duplicates": 1} and m.counters.paired == 1


def test_signal_older_than_the_waiting_tick_goes_alone() -> None:
    """A signal for seq 1 after the seq 1 quote went (the worker took the quote for a
    trigger): released alone before the waiting trade, which still pairs with seq 2's."""
    m = merger(0)
    m.tick(0, q("BTC", 1))
    m.tick(0, tr("BTC", 2))
    assert out(m, idle={0}) == ["BTC q@1"]
    m.signal(sig("BTC", 1, 1))
    m.signal(sig("BTC", 2, 2))
    assert out(m, idle={0}) == ["BTC#1", "BTC t@2 + BTC#2"]
    assert anomalies(m) == {"late_signals": 1} and m.counters.paired == 1


def test_late_signal_of_a_quiet_symbol_is_released_at_the_end() -> None:
    """As above, but BTC delivers nothing after the quote: ``ready`` only looks at symbols
    holding ticks, so BTC#1 stays held (pending() == 1) though the input has ended, and
    late_signals stays 0 — a mismatch of the worker's and the reader's counts goes unseen."""
    m = merger(0)
    m.tick(0, q("BTC", 1))
    assert finish(m) == ["BTC q@1"]
    m.signal(sig("BTC", 1, 1))
    assert finish(m) == ["BTC#1"]
    assert m.pending() == 0 and anomalies(m) == {"late_signals": 1}


# --- idle partitions and late ticks ----------------------------------------------------------


def test_idle_partition_lets_events_through() -> None:
    """A registered partition that never delivers blocks everything until declared idle;
    idle, it holds nothing back, while the others still must deliver a later tick."""
    m = merger(0, 1)
    m.tick(0, q("BTC", 1))
    m.tick(0, q("BTC", 2))
    m.tick(0, q("BTC", 3))
    assert out(m) == [] and out(m, idle={0}) == []
    assert out(m, idle={1}) == ["BTC q@1", "BTC q@2"]  # BTC@3: partition 0 is at 3
    m.tick(0, q("BTC", 4))
    assert out(m) == []  # not idle any more: partition 1 is waited for again
    assert out(m, idle={1}) == ["BTC q@3"]
    assert m.partitions() == [0, 1] and anomalies(m) == {}


def test_a_partition_is_waited_for_once_it_delivers() -> None:
    """Without add_partition, the first tick of a partition registers it."""
    m = Merger(TRADES)
    m.tick(0, q("BTC", 1))
    m.tick(1, q("ETH", 1))
    m.tick(0, q("BTC", 5))
    assert m.partitions() == [0, 1]
    assert out(m) == []  # partition 1 is at 1: ADA@1 could still come
    m.tick(1, q("ETH", 6))
    assert out(m) == ["BTC q@1", "ETH q@1"]


def test_late_tick_is_counted_and_still_released() -> None:
    """A partition declared idle wakes up with a tick older than what went: applied late and
    counted, not dropped nor held for ever; a tick at the released time is not late."""
    m = merger(0, 1)
    for s in (1, 5, 9):
        m.tick(0, q("BTC", s))
    assert out(m, idle={1}) == ["BTC q@1", "BTC q@5"]
    m.tick(1, q("ETH", 3))
    assert m.counters.late_ticks == 1
    assert out(m) == []  # partition 1 is at 3 and not idle: ETH@3 still waits
    m.tick(1, q("ETH", 5))  # same time as BTC@5, and ETH sorts after BTC: in order
    assert m.counters.late_ticks == 1
    assert out(m, idle={1}) == ["ETH q@3", "ETH q@5"]  # BTC@9: partition 0 is at 9
    assert finish(m) == ["BTC q@9"]
    assert anomalies(m) == {"late_ticks": 1} and m.pending() == 0


def test_a_partition_is_as_far_as_its_latest_tick() -> None:
    """A stray older tick from a partition does not pull it back: BTC@1 goes because
    partition 1 delivered ETH@6, though its last tick is ADA@0 (catches keeping the last
    time instead of the newest)."""
    m = merger(0, 1)
    m.tick(0, q("BTC", 1))
    m.tick(0, q("BTC", 9))
    m.tick(1, q("ETH", 6))
    m.tick(1, q("ADA", 0))
    assert out(m) == ["ADA q@0", "BTC q@1"]  # ETH@6: partition 1 is at 6


def test_late_tick_at_the_released_time_of_an_earlier_symbol_is_counted() -> None:
    """BTC@5 went while partition 1 was idle; partition 1 then sends ADA@5, which the
    canonical order (the embedded backtest's stable sort) puts before BTC@5. It is applied
    after it, yet ``tick.ts < released_ts`` is false, so late_ticks stays 0."""
    m = merger(0, 1)
    m.tick(0, q("BTC", 5))
    m.tick(0, q("BTC", 9))
    assert out(m, idle={1}) == ["BTC q@5"]
    m.tick(1, q("ADA", 5))
    assert m.counters.late_ticks == 1


# --- pickled state ---------------------------------------------------------------------------


def test_pickled_merger_continues_identically() -> None:
    """Catches state lost in a restore: held ticks and signals, the per-symbol counts (for
    pairing and duplicates), the partitions' newest times, the released time, counters."""
    a = merger(0, 1)
    a.tick(0, q("BTC", 1))  # BTC seq 1
    a.tick(0, tr("BTC", 2))  # BTC seq 2
    a.tick(1, tr("ETH", 1))  # ETH seq 1
    a.signal(sig("ETH", 1, 1))
    a.tick(1, q("ETH", 3))  # ETH seq 2
    a.tick(1, tr("ETH", 5))  # ETH seq 3
    a.signal(sig("ETH", 3, 5))  # held: its tick waits behind BTC t@2
    assert out(a) == ["BTC q@1", "ETH t@1 + ETH#1"]  # BTC t@2: partition 0 is at 2
    b = pickle.loads(pickle.dumps(a))

    def rest(m: Merger) -> list[str]:
        got = out(m)
        m.signal(sig("BTC", 2, 2))
        m.signal(sig("ETH", 1, 1))  # a duplicate
        got += out(m)
        m.tick(0, tr("BTC", 4))  # BTC seq 3
        m.tick(0, q("BTC", 6))
        got += out(m)
        m.signal(sig("BTC", 3, 4))
        got += out(m)
        m.tick(1, q("ETH", 0))  # late: 4 s went already
        got += out(m, idle={1})
        return got + finish(m)

    expected = [
        "BTC t@2 + BTC#2",
        "ETH q@3",  # then BTC t@4 waits for its signal
        "BTC t@4 + BTC#3",  # then ETH t@5: partition 1 is at 5
        "ETH t@5 + ETH#3",  # ETH's own order: ETH q@0 came after it
        "ETH q@0",  # then BTC q@6: partition 0 is at 6
        "BTC q@6",
    ]
    assert rest(a) == expected
    assert rest(b) == expected
    assert b.counters == a.counters and b.pending() == 0
    assert anomalies(b) == {"duplicates": 1, "late_ticks": 1}


# --- property: the merge is a stable sort, whatever the interleaving --------------------------

SYMBOLS = ("BTC", "ETH", "SOL")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[frozenset[str], int, list[list[Tick]]]:
    """Triggers, the number of partitions, and each partition's ticks (non-decreasing times;
    each symbol on one partition, as Kafka keys them)."""
    triggers = draw(st.sampled_from([TRADES, frozenset({"trade", "quote"}), frozenset()]))
    n_sym = draw(st.integers(1, 3))
    n_part = draw(st.integers(1, 2))
    home = [draw(st.integers(0, n_part - 1)) for _ in range(n_sym)]
    streams: list[list[Tick]] = []
    price = 1.0
    for p in range(n_part):
        mine = [SYMBOLS[i] for i in range(n_sym) if home[i] == p]
        ticks: list[Tick] = []
        ts = 1_000 * S
        if mine:
            for dt, sym, trade in draw(
                st.lists(
                    st.tuples(st.integers(0, 2), st.sampled_from(mine), st.booleans()),
                    max_size=12,
                )
            ):
                ts += dt * S
                price += 1.0  # tells equal ticks apart
                ticks.append(Trade(sym, ts, price, 1.0) if trade else q(sym, ts // S, price))
        streams.append(ticks)
    return triggers, n_part, streams


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(scenarios(), st.data())
def test_merge_is_the_stable_sort_whatever_the_interleaving(
    scenario: tuple[frozenset[str], int, list[list[Tick]]], data: st.DataObject
) -> None:
    # catches any dependence of the output on the arrival interleaving of partitions and
    # signals (a tick released before another partition caught up, a signal paired with the
    # wrong tick, released before its tick or lost), and a difference between draining after
    # every event and once at the end
    triggers, n_part, streams = scenario
    signals: dict[str, list[Signal]] = {}
    steps: list[tuple[Tick, Signal | None]] = []
    seqs: dict[str, int] = {}
    for ticks in streams:
        for t in ticks:
            seq = seqs[t.symbol] = seqs.get(t.symbol, 0) + 1
            s = sig(t.symbol, seq, t.ts // S) if t.kind in triggers else None
            if s is not None:
                signals.setdefault(t.symbol, []).append(s)
            steps.append((t, s))
    steps.sort(key=lambda step: (step[0].ts, step[0].symbol))  # stable: a symbol's own order
    expected: list[Released] = list(steps)

    # each source (a partition's ticks, a symbol's signals) in its own order, interleaved
    sources: list[list[tuple[int, Tick | Signal]]] = [
        [(p, t) for t in ticks] for p, ticks in enumerate(streams)
    ]
    sources += [[(-1, s) for s in sigs] for sigs in signals.values()]
    events: list[tuple[int, Tick | Signal]] = []
    while any(sources):
        src = data.draw(st.sampled_from([x for x in sources if x]))
        events.append(src.pop(0))

    once = merger(*range(n_part), triggers=triggers)
    each = merger(*range(n_part), triggers=triggers)
    got_each: list[Released] = []
    for p, ev in events:
        for m in (once, each):
            if isinstance(ev, Signal):
                m.signal(ev)
            else:
                m.tick(p, ev)
        got_each += each.ready()
    got_once = list(once.ready(idle=once.partitions()))
    got_each += each.ready(idle=each.partitions())

    assert got_once == expected
    assert got_each == expected
    for m in (once, each):
        assert anomalies(m) == {} and m.pending() == 0
        assert m.counters.paired == sum(len(v) for v in signals.values())


def test_held_counts_each_partitions_ticks_until_released() -> None:
    """Catches: a held count that ignores the partition, or is not decremented on release
    (the agent would pause a partition for good: a stall)."""
    m = merger(0, 1)
    m.tick(0, tr("BTC", 1))
    m.tick(0, q("BTC", 2))
    m.tick(1, q("ETH", 1))
    assert (m.held(0), m.held(1)) == (2, 1)
    m.tick(1, q("ETH", 3))
    assert out(m) == []  # BTC t@1 waits for its signal
    m.signal(sig("BTC", 1, 1))
    assert out(m) == ["BTC t@1 + BTC#1", "ETH q@1"]  # BTC q@2 waits for p0's later tick
    assert (m.held(0), m.held(1)) == (1, 1)
    assert finish(m) == ["BTC q@2", "ETH q@3"]
    assert (m.held(0), m.held(1), m.held(7)) == (0, 0, 0)
