"""The Binance parser of the live connector on recorded frames: cryptofeed's spot and USD-M
futures captures (every frame kind they hold) and the bundled sample's own frames."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import orjson
import pytest

from models.records import Quote, Trade
from streams.feed import BinanceVenue, FrameError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cryptofeed"
SAMPLE = Path(__file__).parents[2] / "data" / "binance" / "spot" / "btcusdt_20240809.gz"
NS = 1_000_000_000


def frames(name: str) -> list[tuple[int, bytes]]:
    """(receive ns, raw frame) of a cryptofeed capture's received lines."""
    out = []
    for line in (FIXTURES / name).read_bytes().splitlines():
        head, sep, body = line.partition(b": ")
        if sep and not head.startswith(b"wss://"):
            out.append((round(float(head) * NS), body))
    return out


@pytest.mark.parametrize("name", ["BINANCE.ws.1.0", "BINANCE_FUTURES.ws.1.0"])
def test_every_captured_frame_parses_and_book_tickers_become_quotes(name: str) -> None:
    v = BinanceVenue()
    kinds: dict[str, int] = {}
    for recv, raw in frames(name):
        frame = orjson.loads(raw)
        kind = frame["stream"].split("@", 1)[1]
        kinds[kind] = kinds.get(kind, 0) + 1
        p = v.parse(raw, recv)
        assert p.data and not p.shutdown
        if kind != "bookTicker":  # depth, aggTrade, kline: valid streams we do not use
            assert p.ticks == []
            continue
        if p.duplicates:
            continue
        ((tick, needs_offset),) = p.ticks
        d = frame["data"]
        assert isinstance(tick, Quote) and tick.symbol == d["s"]
        assert (tick.bid, tick.ask) == (float(d["b"]), float(d["a"]))
        assert (tick.bid_size, tick.ask_size) == (float(d["B"]), float(d["A"]))
        if "T" in d:  # futures stamp the book: no offset needed
            assert not needs_offset and tick.ts == d["T"] * 1_000_000
        else:  # spot does not: receive time now, the feed adds the clock offset
            assert needs_offset and tick.ts == recv
    assert kinds.get("bookTicker", 0) > 50 and len(kinds) >= 3


def test_spot_book_ticker_by_hand() -> None:
    raw = (
        b'{"stream":"nknusdt@bookTicker","data":{"u":499869769,"s":"NKNUSDT",'
        b'"b":"0.35210000","B":"672.00000000","a":"0.35250000","A":"1123.00000000"}}'
    )
    p = BinanceVenue().parse(raw, 1_633_998_513_392_304_200)
    assert p.ticks == [
        (Quote("NKNUSDT", 1_633_998_513_392_304_200, 0.3521, 0.3525, 672.0, 1123.0), True)
    ]


def test_the_samples_trades_parse_with_their_aggressor_and_time() -> None:
    """The bundled recording's first trades: ``m`` true (the buyer made) is a sell."""
    v = BinanceVenue()
    with gzip.open(SAMPLE, "rb") as f:
        lines = [ln for ln in itertools.islice(f, 20_000) if b"@trade" in ln[:80]][:200]
    assert lines
    for line in lines:
        head, _, raw = line.rstrip(b"\n").partition(b" ")
        d = orjson.loads(raw)["data"]
        ((tick, needs_offset),) = v.parse(raw, int(head)).ticks
        assert isinstance(tick, Trade) and not needs_offset
        assert tick.ts == d["T"] * 1_000_000 and tick.price == float(d["p"])
        assert tick.side == ("sell" if d["m"] else "buy")
    assert v.ids.duplicates == 0 and v.ids.gaps == 0  # the sample's ids are contiguous


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"stream":"btcusdt@trade","data":{', "malformed JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"data":{}}', "no stream"),
        (b'{"stream":"btcusdt@trade","data":{"s":"BTCUSDT"}}', "missing field"),
        (
            b'{"stream":"btcusdt@trade","data":{"s":"X","T":1,"m":"false","p":"1","q":"1"}}',
            r"'m' \(buyer is maker\) must be true or false",
        ),
    ],
)
def test_bad_frames_raise_a_frame_error_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        BinanceVenue().parse(raw, 0)


def test_control_frames() -> None:
    v = BinanceVenue()
    assert v.parse(b'{"e":"serverShutdown","E":1}', 0).shutdown
    assert v.parse(b'{"stream":"!x","data":{"e":"serverShutdown"}}', 0).shutdown
    ack = v.parse(b'{"result":null,"id":1}', 0)
    assert not ack.data and not ack.ticks and ack.error is None
    assert v.parse(b'{"code":2,"msg":"Invalid request"}', 0).error == "Invalid request"
