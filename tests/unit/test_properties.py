"""Property-based tests (hypothesis) of the readers and codecs.

- whatever lines or bytes come in, ``read_ticks`` raises nothing but ReaderError, and that only
  for a file-level problem; every tick it yields passes ``validate``; every bad line is counted;
- encode/decode round-trips ticks, votes and signals exactly (tiny and huge finite floats,
  unicode symbols);
- the strict decoders and the JSON Schemas agree on generated and mutated records, except for
  the two rules a schema cannot express (an integer written as a float literal, bid < ask);
- batch ticks records: round trips, bad items reported exactly at their indices, any bytes
  decoded without an exception, and agreement with ``tick-batch.schema.json``.

Runs are derandomized and use no example database, so CI sees the same examples every time.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.records import (
    Action,
    Label,
    Outcome,
    Quote,
    Reject,
    Signal,
    StageVote,
    Tick,
    Trade,
    Vote,
)
from streams.codecs import (
    DecodeError,
    RecordDecodeError,
    decode_signal,
    decode_tick,
    decode_tick_record,
    decode_vote,
    encode_signal,
    encode_tick,
    encode_tick_batch,
    encode_vote,
    signal_to_dict,
    tick_from_dict,
    tick_to_dict,
    vote_to_dict,
)
from streams.readers import ReaderError, ReaderStats, read_ticks
from streams.validation import PRICE_MAX, PRICE_MIN, SIZE_MAX, TS_MAX_NS, TS_MIN_NS, validate
from tests.schemas import schema_validator

FAST = settings(
    max_examples=100,  # derandomized: the same 100 cases every run (unit-time budget)
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
I64 = 2**63 - 1


TICK_SCHEMA, VOTE_SCHEMA, SIGNAL_SCHEMA, TICK_BATCH_SCHEMA = (
    schema_validator("tick"),
    schema_validator("vote"),
    schema_validator("signal"),
    schema_validator("tick-batch"),
)

# --- strategies of valid records -----------------------------------------------------------

symbols = st.text(min_size=1, max_size=12)  # any unicode but surrogates, which JSON cannot carry
times = st.integers(TS_MIN_NS, TS_MAX_NS - 1)
prices = st.floats(PRICE_MIN, PRICE_MAX)  # finite by construction; tiny and huge both drawn
sizes = st.floats(0.0, SIZE_MAX).filter(lambda x: x > 0.0)
quote_sizes = st.floats(0.0, SIZE_MAX)
sides = st.sampled_from(["buy", "sell", None])


@st.composite
def quotes(draw: st.DrawFn) -> Quote:
    bid = draw(prices)
    ask = draw(prices.filter(lambda a: a > bid))
    return Quote(draw(symbols), draw(times), bid, ask, draw(quote_sizes), draw(quote_sizes))


trades = st.builds(Trade, symbols, times, prices, sizes, sides)
ticks = st.one_of(trades, quotes())
probs = st.floats(0.0, 1.0)
ints64 = st.integers(1, I64)
votes = st.builds(
    Vote,
    stage=st.text(max_size=8),
    model=st.text(max_size=8),
    version=st.integers(0, I64),
    symbol=symbols,
    seq=ints64,
    ts=ints64,
    p_up=st.none() | probs,
    outcomes=st.lists(st.builds(Outcome, ints64, st.sampled_from(list(Label))), max_size=3).map(
        tuple
    ),
    drift=st.none() | st.sampled_from(["alarm", "muted"]),
)
stage_votes = st.builds(
    StageVote,
    name=st.text(max_size=8),
    model=st.text(max_size=8),
    version=st.integers(0, I64),
    p_up=st.none() | probs,
    weight=probs,
    drift=st.none() | st.sampled_from(["alarm", "muted"]),
)
signals = st.builds(
    Signal,
    id=st.text("0123456789abcdef", min_size=32, max_size=32),
    symbol=symbols,
    seq=ints64,
    ts=ints64,
    horizon_ns=ints64,
    action=st.sampled_from(list(Action)),
    p_up=probs,
    quorum_met=st.booleans(),
    stages=st.lists(stage_votes, max_size=3).map(tuple),
    missing=st.lists(st.text(max_size=8), max_size=2).map(tuple),
    config_hash=st.text(max_size=16),
)


# --- round trips -----------------------------------------------------------------------------


@FAST
@given(ticks)
def test_tick_round_trip_is_exact(tick: Tick) -> None:
    # catches a lossy float format (e.g. rounding to 8 decimals would break 1e-15 and 1e15)
    assert validate(tick) is tick
    assert decode_tick(encode_tick(tick)) == tick


@FAST
@given(votes)
def test_vote_round_trip_is_exact_and_schema_valid(vote: Vote) -> None:
    data = encode_vote(vote)
    assert decode_vote(data) == vote
    VOTE_SCHEMA.validate(orjson.loads(data))


@FAST
@given(signals)
def test_signal_round_trip_is_exact_and_schema_valid(signal: Signal) -> None:
    data = encode_signal(signal)
    assert decode_signal(data) == signal
    SIGNAL_SCHEMA.validate(orjson.loads(data))


# --- decoders and schemas agree --------------------------------------------------------------

# values a mutation puts in a field: right and wrong types, numeric strings, bools, null,
# out-of-range numbers (JSON cannot carry NaN or inf: orjson would write null)
any_value = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 0.0, 1.0, 1e-15, 1e15, 1e15 + 1, 5e-324, TS_MIN_NS, TS_MAX_NS]),
    st.sampled_from([TS_MIN_NS - 1, TS_MAX_NS - 1, I64, I64 + 1, 0.5]),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.sampled_from(["1", "100.5", "1e3", "NaN", "buy", "sell", "trade", "quote", "BUY", "up"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.just({}),
)
MISSING = object()


def _mutate(draw: st.DrawFn, d: dict[str, Any], extra_keys: list[str]) -> tuple[str, object]:
    """Change one field (or add an unknown one, or drop one); return (field, new value)."""
    key = draw(st.sampled_from([*d, *extra_keys]))
    value = draw(st.one_of(any_value, st.just(MISSING)))
    if value is MISSING:
        d.pop(key, None)
    else:
        d[key] = value
    return key, value


def _float_in_int(value: object) -> bool:
    """1.7e18 or 5.0 where the schema says integer: JSON Schema's data model calls it an
    integer, the decoder refuses it (the literal may have lost digits). Not expressible."""
    return type(value) is float and value.is_integer()


def _decodes(decode: Callable[[bytes], object], data: bytes) -> bool:
    try:
        decode(data)
    except DecodeError:
        return False
    return True


@st.composite
def tick_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, object]:
    d = tick_to_dict(draw(ticks))
    if draw(st.booleans()):
        key, value = _mutate(draw, d, ["side", "venue", "bid", "price"])
    else:
        key, value = "", None  # also check the unmutated record
    return d, key, value


@FAST
@given(tick_mutations())
def test_tick_decoder_and_schema_agree(case: tuple[dict[str, Any], str, object]) -> None:
    # catches the old decoder accepting "price": "100.5", unknown fields and "side": null
    # while the schema refused them (and the schema refusing side null, which means unknown)
    d, key, value = case
    data = orjson.dumps(d)
    schema_ok = TICK_SCHEMA.is_valid(orjson.loads(data))
    decoder_ok = _decodes(decode_tick, data)
    if decoder_ok:
        assert schema_ok, d
    elif schema_ok:  # only what the schema cannot say
        crossed = d.get("type") == "quote" and d["bid"] >= d["ask"]
        assert crossed or (key == "ts" and _float_in_int(value)), d


@st.composite
def vote_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, object]:
    d = vote_to_dict(draw(votes))
    key, value = "", None
    choice = draw(st.integers(0, 2))
    if choice == 1:
        key, value = _mutate(draw, d, ["stage_name", "extra"])
    elif choice == 2 and d["outcomes"]:
        value = draw(any_value)
        where = draw(st.integers(0, 2))
        if where == 2:
            d["outcomes"][0].append(value)
        else:
            d["outcomes"][0][where] = value
            key = "outcome.seq" if where == 0 else "outcome.label"
    return d, key, value


@FAST
@given(vote_mutations())
def test_vote_decoder_and_schema_agree(case: tuple[dict[str, Any], str, object]) -> None:
    # catches the old decode_vote taking int("7") / bool(...) / extra fields the schema refuses
    d, key, value = case
    data = orjson.dumps(d)
    schema_ok = VOTE_SCHEMA.is_valid(orjson.loads(data))
    decoder_ok = _decodes(decode_vote, data)
    int_fields = ("version", "seq", "ts", "outcome.seq")
    assert decoder_ok == schema_ok or (key in int_fields and _float_in_int(value)), d


@st.composite
def signal_mutations(draw: st.DrawFn) -> tuple[dict[str, Any], str, object]:
    d = signal_to_dict(draw(signals))
    key, value = "", None
    choice = draw(st.integers(0, 2))
    if choice == 1:
        key, value = _mutate(draw, d, ["extra"])
    elif choice == 2 and d["stages"]:
        stage = d["stages"][0]
        key, value = _mutate(draw, stage, ["extra"])
        key = "stage." + key
    if choice == 1 and key == "id" and draw(st.booleans()):
        value = d["id"] = "0" * 32 + "\n"  # Python's re lets "$" match before a final newline
    return d, key, value


@FAST
@given(signal_mutations())
def test_signal_decoder_and_schema_agree(case: tuple[dict[str, Any], str, object]) -> None:
    # catches the old decode_signal taking bool("no") for quorum_met, any string as id, etc.
    d, key, value = case
    data = orjson.dumps(d)
    schema_ok = SIGNAL_SCHEMA.is_valid(orjson.loads(data))
    decoder_ok = _decodes(decode_signal, data)
    int_fields = ("seq", "ts", "horizon_ns", "stage.version")
    assert decoder_ok == schema_ok or (key in int_fields and _float_in_int(value)), d


@pytest.mark.parametrize(
    ("record", "ok"),
    [
        (
            {"type": "trade", "symbol": "A", "ts": TS_MIN_NS, "price": 1, "size": 1, "side": None},
            True,
        ),
        ({"type": "trade", "symbol": "A", "ts": TS_MIN_NS, "price": "1", "size": 1}, False),
        ({"type": "trade", "symbol": "A", "ts": TS_MIN_NS, "price": 1, "size": 1, "x": 1}, False),
        ({"type": "trade", "symbol": "A", "ts": TS_MIN_NS, "price": True, "size": 1}, False),
        ({"type": "trade", "symbol": "A", "ts": TS_MAX_NS, "price": 1, "size": 1}, False),
    ],
)
def test_the_three_old_disagreements_are_decided_the_same_way(
    record: dict[str, Any], ok: bool
) -> None:
    # the examples, by hand: numeric strings and extra properties are refused by both,
    # "side": null is accepted by both (aggressor unknown)
    data = orjson.dumps(record)
    assert TICK_SCHEMA.is_valid(orjson.loads(data)) is ok
    assert _decodes(decode_tick, data) is ok


def test_float_literal_ts_is_the_documented_exception() -> None:
    record = {"type": "trade", "symbol": "A", "ts": float(TS_MIN_NS), "price": 1, "size": 1}
    data = orjson.dumps(record)
    assert TICK_SCHEMA.is_valid(orjson.loads(data))  # JSON Schema: 6.3e17 is an integer
    assert not _decodes(decode_tick, data)  # the decoder: an integer literal or nothing


# --- batch ticks records ---------------------------------------------------------------------

tick_lists = st.lists(ticks, min_size=1, max_size=30)
# items no decoder may take: wrong types, a bad field, a crossed quote, unknown fields
bad_items = st.one_of(
    st.sampled_from([None, 0, 1.5, True, "trade", [], {}, [{"type": "trade"}]]),
    ticks.map(lambda t: tick_to_dict(t) | {"ts": str(t.ts)}),
    ticks.map(lambda t: tick_to_dict(t) | {"venue": "X"}),
    ticks.map(lambda t: {k: v for k, v in tick_to_dict(t).items() if k != "symbol"}),
    quotes().map(lambda q: tick_to_dict(q) | {"bid": q.ask}),
    trades.map(lambda t: tick_to_dict(t) | {"price": -t.price}),
)


@FAST
@given(tick_lists)
def test_tick_batch_round_trip_is_exact(batch: list[Tick]) -> None:
    data = encode_tick_batch(batch)
    assert decode_tick_record(data) == batch
    assert TICK_BATCH_SCHEMA.is_valid(orjson.loads(data))
    assert decode_tick_record(encode_tick(batch[0])) == [batch[0]]  # the single form too


@st.composite
def batches_with_bad_items(draw: st.DrawFn) -> tuple[list[Any], set[int], list[Tick]]:
    """(items, indices of the bad ones, the good ticks in order)."""
    good = draw(tick_lists)
    items: list[Any] = [tick_to_dict(t) for t in good]
    where = draw(st.sets(st.integers(0, len(items)), min_size=1, max_size=len(items) + 1))
    for i in sorted(where):  # ascending: each insert lands at its final index
        items.insert(i, draw(bad_items))
    return items, where, good


@FAST
@given(batches_with_bad_items())
def test_bad_batch_items_are_errors_exactly_at_their_indices(
    case: tuple[list[Any], set[int], list[Tick]],
) -> None:
    # catches a decoder that drops the bad item (shifting the indices), gives up on the rest
    # of the record, or lets one item's error leak onto another
    items, bad, good = case
    got = decode_tick_record(orjson.dumps(items))
    assert len(got) == len(items)
    assert {i for i, x in enumerate(got) if isinstance(x, DecodeError)} == bad
    for i in bad:
        assert not isinstance(got[i], RecordDecodeError) and str(got[i])
        with pytest.raises(DecodeError) as alone:  # the same verdict as the item alone
            tick_from_dict(items[i])
        assert str(alone.value) == str(got[i])
    assert [x for i, x in enumerate(got) if i not in bad] == good  # unchanged, in order


json_values = st.recursive(  # integers as orjson writes them: 64-bit
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@FAST
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=40).map(lambda b: b"[" + b),
        st.binary(max_size=40).map(lambda b: b"[" + encode_tick(Trade("A", TS_MIN_NS, 1, 1)) + b),
        json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)),
        st.lists(st.one_of(bad_items, json_values), max_size=5).map(orjson.dumps),
    )
)
def test_decode_tick_record_never_raises_whatever_the_bytes(raw: bytes) -> None:
    # the worker calls it on every record: an exception would stall or kill a partition
    got = decode_tick_record(raw)
    assert got and all(isinstance(x, Tick | DecodeError) for x in got)
    assert all(validate(x) is x for x in got if not isinstance(x, DecodeError))
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        assert len(got) == 1 and isinstance(got[0], RecordDecodeError)
        return
    if type(obj) is list and obj:
        assert len(got) == len(obj)  # one result per item, whatever the items are
        assert not any(isinstance(x, RecordDecodeError) for x in got)
    elif type(obj) is not dict:
        assert len(got) == 1 and isinstance(got[0], RecordDecodeError)


@st.composite
def tick_batch_mutations(draw: st.DrawFn) -> tuple[Any, list[tuple[str, object]]]:
    """A batch with some items mutated as in tick_mutations, or a record that is not one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([[], {}, None, 1, "x", [[]]])), []
    items: list[Any] = []
    changes: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 6))):
        d, key, value = draw(tick_mutations())
        items.append(d)
        changes.append((key, value))
    return items, changes


@FAST
@given(tick_batch_mutations())
def test_tick_batch_decoder_and_schema_agree(case: tuple[Any, list[tuple[str, object]]]) -> None:
    # the record as a whole: the schema accepts it iff every item decodes (but for the two
    # rules a schema cannot express, per item, as for single ticks)
    record, changes = case
    data = orjson.dumps(record)
    schema_ok = TICK_BATCH_SCHEMA.is_valid(orjson.loads(data))
    got = decode_tick_record(data)
    decoder_ok = type(record) is list and all(not isinstance(x, DecodeError) for x in got)
    if decoder_ok:
        assert schema_ok, record
    elif schema_ok:
        assert type(record) is list
        for item, (key, value), x in zip(record, changes, got, strict=True):
            if isinstance(x, DecodeError):
                crossed = item.get("type") == "quote" and item["bid"] >= item["ask"]
                assert crossed or (key == "ts" and _float_in_int(value)), item


# --- the readers, whatever comes in ----------------------------------------------------------

GOOD_FIRST = {
    "binance": '1723161255000000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,'
    '"s":"BTCUSDT","t":1,"p":"100.0","q":"0.5","T":1723161255000,"m":false}}',
    "csv": "ts,symbol,price,size,side,bid,ask,bid_size,ask_size",
    "jsonl": '{"type":"trade","symbol":"A","ts":1723161255000000000,"price":1.0,"size":1.0}',
}


def _one_line(text: str) -> str:
    """Junk that stays on its line: a lone CR is a line break to the CSV reader (universal
    newlines), so a line holding one is two lines there and its line numbers shift."""
    return text.replace("\n", "").replace("\r", "")


def _mutated_line(fmt: str) -> st.SearchStrategy[str]:
    """A good line of ``fmt`` with one slice replaced by junk or by a nasty token."""
    base = {
        "binance": GOOD_FIRST["binance"],
        "csv": "1723161256000000000,A,100.5,1,buy,,,,",
        "jsonl": GOOD_FIRST["jsonl"],
    }[fmt]
    book = (
        '1723161256000000000 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT",'
        '"b":"99","B":"1","a":"101","A":"2"}}'
    )
    quote_csv = "1723161256000000000,A,,,,99,101,1,2"
    quote_jsonl = (
        '{"type":"quote","symbol":"A","ts":1723161256000000000,"bid":99,"ask":101,'
        '"bid_size":1,"ask_size":2}'
    )
    bases = {"binance": [base, book], "csv": [base, quote_csv], "jsonl": [base, quote_jsonl]}[fmt]
    tokens = st.sampled_from(
        ['"NaN"', "NaN", "1e999", "-1", "0", "true", "null", '""', '"x"', "[]", "{}", ",", '"',
         "\x00", "\u00e9", "\ufeff", "9" * 25, "-1e999", "1e300", "5e-324", "\\", "}"]
    )  # fmt: skip
    junk = st.one_of(tokens, st.text(max_size=6).map(_one_line))

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        line = draw(st.sampled_from(bases))
        i = draw(st.integers(0, len(line)))
        j = draw(st.integers(i, min(len(line), i + 8)))
        return line[:i] + draw(junk) + line[j:]

    return mutate()


def _read_all(path: Path, fmt: str) -> tuple[list[Tick], list[Reject], ReaderStats]:
    rejects: list[Reject] = []
    stats = ReaderStats()
    got = list(read_ticks([path], fmt=fmt, on_reject=rejects.append, stats=stats))
    return got, rejects, stats


@FAST
@given(
    st.sampled_from(["binance", "csv", "jsonl"]).flatmap(
        lambda fmt: st.tuples(
            st.just(fmt),
            st.lists(
                st.one_of(_mutated_line(fmt), st.text(max_size=30).map(_one_line)),
                max_size=8,
            ),
        )
    )
)
def test_reader_never_raises_on_bad_lines_and_yields_only_valid_ticks(
    case: tuple[str, list[str]],
) -> None:
    # catches a line-level exception escaping the reader (a non-string Binance "stream" raised
    # AttributeError; csv.Error; OverflowError of int(inf)) and a tick that skips validation
    fmt, lines = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.txt"
        text = "\n".join([GOOD_FIRST[fmt], *lines]) + "\n"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        got, rejects, stats = _read_all(path, fmt)
    for tick in got:
        assert validate(tick) is tick
        assert TS_MIN_NS <= tick.ts < TS_MAX_NS
    assert stats.rejected == len(rejects)
    assert all(2 <= r.line <= len(lines) + 1 and r.reason for r in rejects)
    assert len(rejects) + len(got) + stats.skipped <= len(lines) + 1


@FAST
@given(
    st.sampled_from(["binance", "csv", "jsonl", None]),
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),
        st.binary(max_size=200).map(lambda b: gzip.compress(b)[: max(2, len(b) // 2)]),
        st.binary(max_size=200).map(lambda b: GOOD_FIRST["binance"].encode() + b"\n" + b),
        st.binary(max_size=200).map(lambda b: GOOD_FIRST["csv"].encode() + b"\n" + b),
        st.binary(max_size=200).map(lambda b: GOOD_FIRST["jsonl"].encode() + b"\n" + b),
    ),
)
def test_reader_raises_only_reader_error_whatever_the_bytes(fmt: str | None, data: bytes) -> None:
    # the contract: a file-level problem (empty, undetectable, no header, unreadable gzip) is a
    # ReaderError naming the file; anything else is a reject, never another exception
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.bin"
        path.write_bytes(data)
        try:
            got, rejects, stats = _read_all(path, fmt)  # type: ignore[arg-type]
        except ReaderError as e:
            assert str(path) in str(e)
            return
    assert all(validate(t) is t for t in got)
    assert stats.rejected == len(rejects)
