"""Packed ticks records: the batch codec by example, and the partitioner that places a batch.

The properties (round trips, errors at their indices, arbitrary bytes, agreement with
``tick-batch.schema.json``) are in test_properties.py; here are the cases worth reading.
"""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from models.records import Quote, Tick, Trade
from streams.codecs import (
    DecodeError,
    RecordDecodeError,
    decode_tick,
    decode_tick_record,
    encode_tick,
    encode_tick_batch,
    is_tick_batch,
    tick_to_dict,
)
from streams.partitioner import murmur2, partition_for

T0 = 1_723_161_255_000_000_000
TRADE = Trade("BTCUSDT", T0, 100.5, 0.25, "buy")
QUOTE = Quote("ETHUSDT", T0 + 1, 10.0, 10.5, 1.0, 0.0)
UNKNOWN_SIDE = Trade("BTCUSDT", T0 + 2, 101.0, 1.0)


# --- the batch codec -------------------------------------------------------------------------


def test_a_batch_is_the_json_array_of_the_single_records() -> None:
    ticks: list[Tick] = [TRADE, QUOTE, UNKNOWN_SIDE]
    data = encode_tick_batch(ticks)
    assert data == b"[" + b",".join(encode_tick(t) for t in ticks) + b"]"
    assert decode_tick_record(data) == ticks


def test_an_empty_batch_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_tick_batch([])


def test_a_single_tick_record_is_still_one_tick() -> None:
    assert decode_tick_record(encode_tick(QUOTE)) == [QUOTE]
    assert decode_tick(encode_tick(QUOTE)) == QUOTE  # the old decoder is unchanged
    (err,) = decode_tick_record(b'{"type":"trade","symbol":"A","ts":1,"price":1,"size":1}')
    assert isinstance(err, DecodeError) and not isinstance(err, RecordDecodeError)
    assert "ts" in str(err)


def test_bad_items_are_reported_in_place_and_the_good_ones_kept() -> None:
    bad_price = tick_to_dict(TRADE) | {"price": "100.5"}
    crossed = tick_to_dict(QUOTE) | {"bid": 11.0}
    items = [tick_to_dict(TRADE), bad_price, 7, tick_to_dict(QUOTE), crossed, None]
    got = decode_tick_record(orjson.dumps(items))
    assert len(got) == len(items)
    assert got[0] == TRADE and got[3] == QUOTE
    reasons = {i: str(e) for i, e in enumerate(got) if isinstance(e, DecodeError)}
    assert sorted(reasons) == [1, 2, 4, 5]
    # what decode_tick says of the item alone: the field and why
    assert reasons[1] == "field 'price' must be a JSON number, got '100.5'"
    assert reasons[2] == reasons[5] == "tick must be a JSON object"
    assert "bid" in reasons[4] and "ask" in reasons[4]
    for i in (1, 4):
        with pytest.raises(DecodeError) as single:
            decode_tick(orjson.dumps(items[i]))
        assert str(single.value) == reasons[i]
    assert not any(isinstance(e, RecordDecodeError) for e in got)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "malformed JSON"),
        (b"[{", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[" * 5000, "malformed JSON"),  # deeper than orjson goes: still no exception
        (b"[]", "at least one tick"),
        (b"  [ ]\n", "at least one tick"),
        (b'"a tick"', "a JSON object (a tick) or an array"),
        (b"42", "a JSON object (a tick) or an array"),
        (b"null", "a JSON object (a tick) or an array"),
    ],
)
def test_an_undecodable_record_is_one_record_error(raw: bytes, why: str) -> None:
    (err,) = decode_tick_record(raw)
    assert isinstance(err, RecordDecodeError) and why in str(err)


def test_whitespace_around_either_form_is_fine() -> None:
    single, batch = encode_tick(TRADE), encode_tick_batch([TRADE, QUOTE])
    assert decode_tick_record(b" \n\t" + single + b"\r\n") == [TRADE]
    assert decode_tick_record(b"\n " + batch + b" ") == [TRADE, QUOTE]
    assert is_tick_batch(b" \n\t" + batch) and is_tick_batch(b"[]")
    assert not is_tick_batch(single) and not is_tick_batch(b"") and not is_tick_batch(b"  ")


def test_a_batch_of_one_is_still_a_batch() -> None:
    data = encode_tick_batch([TRADE])
    assert data.startswith(b"[") and decode_tick_record(data) == [TRADE]
    with pytest.raises(DecodeError):
        decode_tick(data)  # the single-tick decoder refuses arrays, as before


# --- where a batch goes: Kafka's default partitioner ---------------------------------------------

# Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2): Java's signed ints
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafkas_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partitions_of_the_sample_symbols() -> None:
    # by hand from the vectors' formula, so a change of the partitioner is loud
    for key in (b"BTCUSDT", b"ETHUSDT", b"", b"\x00", b"\xff" * 7):
        for n in (1, 2, 6, 7, 1000):
            assert partition_for(key, n) == (murmur2(key) & 0x7FFFFFFF) % n
    assert partition_for(b"anything", 1) == 0
    with pytest.raises(ValueError, match="partitions"):
        partition_for(b"BTCUSDT", 0)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64), st.integers(1, 10_000))
def test_partitioner_agrees_with_aiokafka(key: bytes, partitions: int) -> None:
    # aiokafka's murmur2 is the Java client's, returned unsigned; its DefaultPartitioner is
    # what Faust producers use, and librdkafka's murmur2_random does the same for keys
    assert murmur2(key) & 0xFFFFFFFF == aiokafka_murmur2(key)
    assert -(2**31) <= murmur2(key) < 2**31
    everyone = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, everyone, everyone)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(min_size=1, max_size=12), st.integers(1, 64))
def test_symbols_partition_as_aiokafka_puts_them(symbol: str, partitions: int) -> None:
    key = symbol.encode()
    everyone = list(range(partitions))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, everyone, everyone)
