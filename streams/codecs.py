"""JSON encodings (orjson) of ticks, votes and signals: the wire format of every topic and file.

Encoding is canonical (fixed key order, shortest float repr) so equal records give equal bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.records import (
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
from streams.validation import InvalidTick, validate


class DecodeError(ValueError):
    """Bytes that are not a valid record; the message is the reject reason."""


def tick_to_dict(tick: Tick) -> dict[str, Any]:
    if isinstance(tick, Trade):
        d: dict[str, Any] = {
            "type": "trade",
            "symbol": tick.symbol,
            "ts": tick.ts,
            "price": tick.price,
            "size": tick.size,
        }
        if tick.side is not None:
            d["side"] = tick.side
        return d
    return {
        "type": "quote",
        "symbol": tick.symbol,
        "ts": tick.ts,
        "bid": tick.bid,
        "ask": tick.ask,
        "bid_size": tick.bid_size,
        "ask_size": tick.ask_size,
    }


def encode_tick(tick: Tick) -> bytes:
    return orjson.dumps(tick_to_dict(tick))


def _number(d: dict[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise DecodeError(f"field {key!r} must be a number, got {v!r}")
    return float(v)


def tick_from_dict(d: Any) -> Tick:
    """Build and validate a tick from its JSON object; raise DecodeError with the reason."""
    if not isinstance(d, dict):
        raise DecodeError("tick must be a JSON object")
    symbol = d.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise DecodeError("field 'symbol' must be a non-empty string")
    ts = d.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise DecodeError(f"field 'ts' must be integer nanoseconds, got {ts!r}")
    kind = d.get("type")
    tick: Tick
    if kind == "trade":
        side = d.get("side")
        if side not in (None, "buy", "sell"):
            raise DecodeError(f"field 'side' must be 'buy' or 'sell', got {side!r}")
        tick = Trade(symbol, ts, _number(d, "price"), _number(d, "size"), side)
    elif kind == "quote":
        tick = Quote(
            symbol,
            ts,
            _number(d, "bid"),
            _number(d, "ask"),
            _number(d, "bid_size"),
            _number(d, "ask_size"),
        )
    else:
        raise DecodeError(f"field 'type' must be 'trade' or 'quote', got {kind!r}")
    try:
        return validate(tick)
    except InvalidTick as e:
        raise DecodeError(str(e)) from None


def decode_tick(data: bytes | str) -> Tick:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"malformed JSON: {e}") from None
    return tick_from_dict(obj)


def vote_to_dict(v: Vote) -> dict[str, Any]:
    return {
        "stage": v.stage,
        "model": v.model,
        "version": v.version,
        "symbol": v.symbol,
        "seq": v.seq,
        "ts": v.ts,
        "p_up": v.p_up,
        "outcomes": [[o.seq, o.label.value] for o in v.outcomes],
    }


def encode_vote(v: Vote) -> bytes:
    return orjson.dumps(vote_to_dict(v))


def decode_vote(data: bytes | str) -> Vote:
    try:
        d = orjson.loads(data)
        return Vote(
            stage=d["stage"],
            model=d["model"],
            version=int(d["version"]),
            symbol=d["symbol"],
            seq=int(d["seq"]),
            ts=int(d["ts"]),
            p_up=None if d["p_up"] is None else float(d["p_up"]),
            outcomes=tuple(Outcome(int(s), Label(lbl)) for s, lbl in d["outcomes"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DecodeError(f"bad vote: {e}") from None


def signal_to_dict(s: Signal) -> dict[str, Any]:
    return {
        "id": s.id,
        "symbol": s.symbol,
        "seq": s.seq,
        "ts": s.ts,
        "horizon_ns": s.horizon_ns,
        "action": s.action.value,
        "p_up": s.p_up,
        "quorum_met": s.quorum_met,
        "stages": [
            {
                "name": sv.name,
                "model": sv.model,
                "version": sv.version,
                "p_up": sv.p_up,
                "weight": sv.weight,
            }
            for sv in s.stages
        ],
        "missing": list(s.missing),
        "config_hash": s.config_hash,
    }


def encode_signal(s: Signal) -> bytes:
    return orjson.dumps(signal_to_dict(s))


def decode_signal(data: bytes | str) -> Signal:
    try:
        d = orjson.loads(data)
        return Signal(
            id=d["id"],
            symbol=d["symbol"],
            seq=int(d["seq"]),
            ts=int(d["ts"]),
            horizon_ns=int(d["horizon_ns"]),
            action=Action(d["action"]),
            p_up=float(d["p_up"]),
            quorum_met=bool(d["quorum_met"]),
            stages=tuple(
                StageVote(
                    name=x["name"],
                    model=x["model"],
                    version=int(x["version"]),
                    p_up=None if x["p_up"] is None else float(x["p_up"]),
                    weight=float(x["weight"]),
                )
                for x in d["stages"]
            ),
            missing=tuple(d["missing"]),
            config_hash=d["config_hash"],
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DecodeError(f"bad signal: {e}") from None


def reject_to_dict(r: Reject) -> dict[str, Any]:
    """The reject record of ``rejects.jsonl`` and the rejected-ticks topic (reject.schema.json)."""
    return {"file": r.source, "line": r.line, "reason": r.reason, "raw": r.raw}


def encode_reject(r: Reject) -> bytes:
    return orjson.dumps(reject_to_dict(r))
