"""Every record the Kafka paper agent produces validates against the schema of its topic.

The records are captured from :class:`streams.paper_agent.KafkaSink` itself (a fake
``outputs``), fed by a real paper backtest on the sample files and by a hand-driven
:class:`agents.paper_session.PaperSession` that reaches the rarer records (limit orders and
maker fills, shorts, flatten orders, the denials).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quorum.backtest
from agents.paper_session import PaperSession
from config.paper import PaperConfig
from config.runtime import RuntimeConfig
from models.orders import Fill
from models.records import Action, Signal, Tick, Trade
from quorum import run_backtest
from quorum.paper_run import FileSink
from quorum.paper_run import open_session as real_open_session
from streams.paper_agent import AgentStats, KafkaSink
from tests.conftest import SAMPLE_FILES, handmade_ticks
from tests.schemas import schema_validator

RUNTIME = RuntimeConfig()
TOPICS = {
    RUNTIME.topic("orders"): "order",
    RUNTIME.topic("fills"): "fill",
    RUNTIME.topic("positions"): "position",
}
VALIDATORS = {topic: schema_validator(name) for topic, name in TOPICS.items()}
ACCOUNT = "acct-1"
S = 1_000_000_000


class CapturingOutputs:
    """Stands in for :class:`streams.outputs.Outputs`: keeps what the sink sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value))


def kafka_sink(outputs: CapturingOutputs) -> KafkaSink:
    return KafkaSink(outputs, RUNTIME, ACCOUNT, AgentStats())  # type: ignore[arg-type]


def check_all(sent: list[tuple[str, bytes | None, bytes]]) -> dict[str, list[dict[str, Any]]]:
    """Validates every captured record against its topic's schema; the records by topic."""
    by_topic: dict[str, list[dict[str, Any]]] = {t: [] for t in TOPICS}
    for topic, key, value in sent:
        doc = orjson.loads(value)
        VALIDATORS[topic].validate(doc)
        assert key == doc["symbol"].encode()
        assert doc["account"] == ACCOUNT
        # event times as integer literals, which JSON Schema cannot tell from 1.7e18
        assert all(type(doc[k]) is int for k in ("ts", "arrival_ts") if k in doc)
        by_topic[topic].append(doc)
    return by_topic


def kinds(by_topic: dict[str, list[dict[str, Any]]]) -> set[str]:
    """What occurred: order:<reason>:<kind>, denial:<reason>, fill:<liquidity>, position."""
    out: set[str] = set()
    for doc in by_topic[RUNTIME.topic("orders")]:
        if doc["type"] == "order":
            out.add(f"order:{doc['reason']}:{doc['kind']}")
            if doc["mid_at_signal"] is None:
                out.add("order:no_mid")
        else:
            out.add(f"denial:{doc['reason']}")
    out |= {f"fill:{f['liquidity']}" for f in by_topic[RUNTIME.topic("fills")]}
    for p in by_topic[RUNTIME.topic("positions")]:
        out.add("position:short" if p["size"] < 0 else "position")
    return out


# --- a real paper backtest --------------------------------------------------------------------


class Tee:
    """The backtest's file sink and the Kafka sink, fed the same session records."""

    def __init__(self, files: FileSink, kafka: KafkaSink) -> None:
        self.files, self.kafka = files, kafka

    def order(self, record: dict[str, Any]) -> None:
        self.files.order(dict(record))
        self.kafka.order(record)

    def fill(self, fill: Fill) -> None:
        self.files.fill(fill)
        self.kafka.fill(fill)

    def position(self, record: dict[str, Any]) -> None:
        self.files.position(dict(record))
        self.kafka.position(record)

    def equity(self, ts: int, equity: float, cash: float) -> None:
        self.files.equity(ts, equity, cash)
        self.kafka.equity(ts, equity, cash)


def test_a_paper_backtests_kafka_records_match_their_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = CapturingOutputs()

    def open_session(
        cfg: PaperConfig, triggers: tuple[str, ...], out: Path | None
    ) -> tuple[PaperSession, FileSink | None]:
        session, files = real_open_session(cfg, triggers, out)
        assert files is not None
        session.sink = Tee(files, kafka_sink(outputs))
        return session, files

    monkeypatch.setattr(quorum.backtest, "open_session", open_session)
    run_backtest(SAMPLE_FILES[:1], out_dir=tmp_path, prefetch=False, paper=PaperConfig())
    by_topic = check_all(outputs.sent)
    assert {"order:entry:market", "order:exit:market", "fill:taker", "position"} <= kinds(by_topic)
    assert any(k.startswith("denial:") for k in kinds(by_topic))
    # one positions record per fill, at the fill's event time
    fills, positions = by_topic[RUNTIME.topic("fills")], by_topic[RUNTIME.topic("positions")]
    assert [(f["symbol"], f["ts"]) for f in fills] == [(p["symbol"], p["ts"]) for p in positions]
    # the Kafka records are the backtest's file records, each naming the account
    for topic, name in ((RUNTIME.topic("orders"), "orders"), (RUNTIME.topic("fills"), "fills")):
        lines = [orjson.loads(x) for x in (tmp_path / f"{name}.jsonl").read_bytes().splitlines()]
        assert lines
        assert by_topic[topic] == [{**d, "account": ACCOUNT} for d in lines]


# --- a hand-driven session --------------------------------------------------------------------


def signal(tick: Tick, seq: int, action: Action) -> Signal:
    sid = hashlib.md5(f"{tick.symbol}/{seq}".encode()).hexdigest()  # 32 hex, like a real one
    return Signal(sid, tick.symbol, seq, tick.ts, 20 * S, action, 0.5, True, (), (), "h")


def with_signals(ticks: list[Tick], every: int) -> Iterator[tuple[Tick, Signal | None]]:
    """Each tick with its signal: every trade (the trigger) has one, HOLD but for every
    ``every``-th trade of the symbol (two BUYs, then two SELLs, in turn)."""
    seqs: dict[str, int] = {}
    trades: dict[str, int] = {}
    for tick in ticks:
        seq = seqs[tick.symbol] = seqs.get(tick.symbol, 0) + 1
        sig = None
        if isinstance(tick, Trade):
            n = trades[tick.symbol] = trades.get(tick.symbol, 0) + 1
            action = Action.HOLD
            if n % every == 0:
                action = Action.BUY if (n // every) % 4 < 2 else Action.SELL
            sig = signal(tick, seq, action)
        yield tick, sig


@pytest.mark.parametrize("order_type", ["market", "limit"])
def test_a_sessions_kafka_records_match_their_schemas(order_type: str) -> None:
    cfg = PaperConfig.model_validate(
        {
            "order_type": order_type,
            "max_orders_per_minute": 4,
            "protection_bps": 2.0,
            "max_wait_ms": 1_000.0,
        }
    )
    session = PaperSession(cfg, ("trade",))
    outputs = CapturingOutputs()
    session.sink = kafka_sink(outputs)
    start = 1_700_000_000 * S
    ticks: list[Tick] = sorted(
        [
            *handmade_ticks(400, "TEST", start),
            # a symbol that only trades: no mid at signal time, and nothing fills there
            *(Trade("ONLYTRADES", start + i * S // 10 + 7, 50.0, 1.0) for i in range(60)),
        ],
        key=lambda t: (t.ts, t.symbol),
    )
    flattened = 0
    for tick, sig in with_signals(ticks, every=20):
        t = tick.ts - start
        if 30 * S <= t < 50 * S:
            session.trader.halt()
        else:
            session.trader.resume()
        if t >= 70 * S and not flattened and session.trader.account.positions["TEST"].size:
            flattened = session.flatten()
        session.tick(0, tick)
        if sig is not None:
            session.signal(sig)
        session.drain()
    session.finish()
    assert flattened

    found = kinds(check_all(outputs.sent))
    expected = {
        f"order:entry:{order_type}",
        "order:exit:market",
        "order:flatten:market",
        "order:no_mid",
        "denial:max_orders_per_minute",
        "denial:halted",
        "denial:expired",
        "fill:taker",
        "position",
        "position:short",
    }
    expected |= {"fill:maker"} if order_type == "limit" else {"denial:protection"}
    assert expected <= found, expected - found


# --- what the schemas refuse ------------------------------------------------------------------

ORDER: dict[str, Any] = {
    "type": "order",
    "id": "a7f90afd8ce66fa022b97f73",
    "signal_id": "ea7a5e35b4b6e563a32873198954524a",
    "symbol": "BTCUSDT",
    "ts": 1_723_161_262_010_000_000,
    "arrival_ts": 1_723_161_262_110_000_000,
    "side": "buy",
    "size": 0.016,
    "kind": "market",
    "limit_price": None,
    "reason": "entry",
    "mid_at_signal": 61829.765,
    "account": ACCOUNT,
}
DENIAL: dict[str, Any] = {
    "type": "denial",
    "order_id": "a7f90afd8ce66fa022b97f73",
    "signal_id": "ea7a5e35b4b6e563a32873198954524a",
    "symbol": "BTCUSDT",
    "ts": 1_723_161_262_010_000_000,
    "reason": "max_position_notional",
    "account": ACCOUNT,
}
FILL: dict[str, Any] = {
    "id": "5215b8870b01c422770e1b84",
    "order_id": "a7f90afd8ce66fa022b97f73",
    "signal_id": "ea7a5e35b4b6e563a32873198954524a",
    "symbol": "BTCUSDT",
    "ts": 1_723_161_262_110_000_001,
    "side": "buy",
    "price": 61830.0,
    "size": 0.016,
    "fee": 0.99,
    "liquidity": "taker",
    "account": ACCOUNT,
}
POSITION: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "ts": 1_723_161_262_110_000_001,
    "size": -0.016,
    "avg_price": 61830.0,
    "realised_pnl": 0.0,
    "fees": 0.99,
    "mark": None,
    "equity": 99_999.0,
    "cash": 100_988.29,
    "account": ACCOUNT,
}
GOOD = [("order", ORDER), ("order", DENIAL), ("fill", FILL), ("position", POSITION)]


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


BAD: list[tuple[str, dict[str, Any]]] = [
    *((name, {**doc, "extra": 1}) for name, doc in GOOD),
    *((name, _without(doc, "account")) for name, doc in GOOD),
    *((name, _without(doc, "ts")) for name, doc in GOOD),
    # seconds as a float (JSON Schema counts an integral float such as 1.7e18 as an integer:
    # check_all asserts the sink writes integer literals)
    *((name, {**doc, "ts": doc["ts"] / S}) for name, doc in GOOD),
    *((name, {**doc, "ts": str(doc["ts"])}) for name, doc in GOOD),
    ("order", {**ORDER, "side": "BUY"}),
    ("fill", {**FILL, "side": "BUY"}),
    ("order", {**ORDER, "type": "cancel"}),
    ("order", {**DENIAL, "type": "cancel"}),
    ("order", _without(ORDER, "type")),
    ("order", {**ORDER, "type": "denial"}),  # an order's fields under the denial's type
    ("order", {**DENIAL, "type": "order"}),
    ("order", _without(ORDER, "limit_price")),  # null, not absent
    ("order", {**ORDER, "reason": "stop"}),
    ("order", {**ORDER, "kind": "stop"}),
    ("order", {**ORDER, "size": 0}),
    ("order", {**DENIAL, "reason": ""}),
    ("order", {**DENIAL, "order_id": "not-hex"}),
    ("fill", {**FILL, "liquidity": "both"}),
    ("fill", {**FILL, "price": 0}),
    ("fill", {**FILL, "price": "61830"}),
    ("fill", {**FILL, "ts": -1}),
    ("fill", {**FILL, "id": FILL["id"][:-1]}),
    ("position", {**POSITION, "mark": "n/a"}),
    ("position", {**POSITION, "size": None}),
]


@pytest.mark.parametrize(("name", "doc"), GOOD)
def test_the_examples_are_valid(name: str, doc: dict[str, Any]) -> None:
    schema_validator(name).validate(doc)


def test_an_open_denial_reason_is_valid() -> None:
    # agents.paper's reasons are plain strings: a new one is not a schema break
    schema_validator("order").validate({**DENIAL, "reason": "some_future_control"})


@pytest.mark.parametrize(("name", "doc"), BAD)
def test_bad_records_are_rejected(name: str, doc: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        schema_validator(name).validate(doc)


# --- any fill --------------------------------------------------------------------------------

hex24 = st.text("0123456789abcdef", min_size=24, max_size=24)
positive = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False, allow_infinity=False)
fills = st.builds(
    Fill,
    id=hex24,
    order_id=hex24,
    signal_id=st.one_of(
        st.text("0123456789abcdef", min_size=32, max_size=32),
        st.integers(1, 99).map(lambda n: f"flatten#{n}@1723161262010000000"),
    ),
    symbol=st.text(min_size=1, max_size=12),
    ts=st.integers(min_value=0, max_value=2**63 - 1),
    side=st.sampled_from(["buy", "sell"]),
    price=positive,
    size=positive,
    fee=st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    liquidity=st.sampled_from(["taker", "maker"]),
)


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(fill=fills)
def test_any_fill_as_the_sink_sends_it_is_valid(fill: Fill) -> None:
    outputs = CapturingOutputs()
    kafka_sink(outputs).fill(fill)
    ((topic, key, value),) = outputs.sent
    assert topic == RUNTIME.topic("fills")
    doc = orjson.loads(value)
    VALIDATORS[topic].validate(doc)
    assert key == fill.symbol.encode()
    assert math.isfinite(doc["price"]) and doc["ts"] == fill.ts
