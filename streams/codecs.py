"""JSON encodings (orjson) of ticks, votes and signals: the wire format of every topic and file.

Encoding is canonical (fixed key order, shortest float repr) so equal records give equal bytes.

A ``ticks`` record is either one tick (a JSON object, ``tick.schema.json``) or a batch of ticks
of one partition (a non-empty JSON array of those objects, ``tick-batch.schema.json``); the
first non-whitespace byte (``{`` or ``[``) tells them apart. :func:`decode_tick_record` reads
both, one result per tick, so one bad element never costs its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

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
from streams.validation import InvalidTick, validate


class DecodeError(ValueError):
    """Bytes that are not a valid record; the message is the reject reason."""


class RecordDecodeError(DecodeError):
    """A ticks record undecodable as a whole (bad JSON, not an object or array, an empty
    array): no element index applies, unlike an error about one item of a batch."""


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


_TRADE_FIELDS = frozenset(("type", "symbol", "ts", "price", "size", "side"))
_QUOTE_FIELDS = frozenset(("type", "symbol", "ts", "bid", "ask", "bid_size", "ask_size"))
INT64_MAX = 2**63 - 1


def _unknown(d: dict[str, Any], allowed: frozenset[str], what: str) -> DecodeError:
    extra = sorted(k for k in d if k not in allowed)
    return DecodeError(f"unknown field {extra[0]!r} in {what}")


def _number(d: dict[str, Any], key: str) -> float:
    """A JSON number, never a string or a bool: the schema says number, so does the decoder."""
    v = d.get(key)
    if isinstance(v, float):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            raise DecodeError(f"field {key!r} is out of range: {v!r}") from None
    if key not in d:
        raise DecodeError(f"missing field {key!r}")
    raise DecodeError(f"field {key!r} must be a JSON number, got {v!r}")


def tick_from_dict(d: Any) -> Tick:
    """Build and validate a tick from its JSON object; raise DecodeError with the reason.

    Strict like ``tick.schema.json``: numbers must be JSON numbers (not strings, not bools),
    unknown fields are refused, ``"side": null`` means the aggressor is unknown. Two rules the
    schema cannot express are enforced here too: ``ts`` must be an integer literal (``1.7e18``
    is a float that may have lost digits) and a quote must have bid < ask.
    """
    if type(d) is not dict:
        raise DecodeError("tick must be a JSON object")
    kind = d.get("type")
    if kind == "trade":
        if not d.keys() <= _TRADE_FIELDS:
            raise _unknown(d, _TRADE_FIELDS, "a trade")
    elif kind == "quote":
        if not d.keys() <= _QUOTE_FIELDS:
            raise _unknown(d, _QUOTE_FIELDS, "a quote")
    else:
        raise DecodeError(f"field 'type' must be 'trade' or 'quote', got {kind!r}")
    symbol = d.get("symbol")
    if type(symbol) is not str or not symbol:
        raise DecodeError(f"field 'symbol' must be a non-empty string, got {symbol!r}")
    ts = d.get("ts")
    if type(ts) is not int:
        raise DecodeError(f"field 'ts' must be integer nanoseconds, got {ts!r}")
    tick: Tick
    if kind == "trade":
        side = d.get("side")
        if side is not None and side != "buy" and side != "sell":
            raise DecodeError(f"field 'side' must be 'buy', 'sell' or null, got {side!r}")
        tick = Trade(symbol, ts, _number(d, "price"), _number(d, "size"), side)
    else:
        tick = Quote(
            symbol,
            ts,
            _number(d, "bid"),
            _number(d, "ask"),
            _number(d, "bid_size"),
            _number(d, "ask_size"),
        )
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


def encode_tick_batch(ticks: Sequence[Tick]) -> bytes:
    """A batch record: the JSON array of the ticks' objects, in order (canonical like one)."""
    if not ticks:
        raise ValueError("a tick batch needs at least one tick")
    return orjson.dumps([tick_to_dict(t) for t in ticks])


_JSON_SPACE = b" \t\n\r"


def is_tick_batch(raw: bytes) -> bool:
    """Whether a ticks record is written as a batch (a JSON array), judged by its first byte.

    Tells a bad batch from a bad single tick without parsing, e.g. to add the element's index
    to a dead letter; says nothing about the record being valid.
    """
    return raw.lstrip(_JSON_SPACE)[:1] == b"["


def decode_tick_record(raw: bytes) -> list[Tick | DecodeError]:
    """Every tick of a ticks record, in order: a Tick, or the DecodeError saying why not.

    A single tick gives one element; a batch gives one per array item (the position is the
    item's index, the message is what :func:`decode_tick` would say of that item alone); a
    record that is neither (bad JSON, another JSON type, an empty array) gives one
    :class:`RecordDecodeError`, so a dead letter can tell it from a bad first item.
    Never raises for bad input: the worker dead-letters the errors and processes the rest.
    Parses the record once (this is the worker's hot path) and validates each item in place.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:  # also non-bytes input and too-deep nesting
        return [RecordDecodeError(f"malformed JSON: {e}")]
    kind = type(obj)
    if kind is list:
        if not obj:
            return [RecordDecodeError("a tick batch must hold at least one tick, got []")]
        out: list[Tick | DecodeError] = []
        for item in obj:
            try:
                out.append(tick_from_dict(item))
            except DecodeError as e:
                out.append(e)
        return out
    if kind is dict:
        try:
            return [tick_from_dict(obj)]
        except DecodeError as e:
            return [e]
    return [RecordDecodeError("a ticks record must be a JSON object (a tick) or an array of ticks")]


def vote_to_dict(v: Vote) -> dict[str, Any]:
    d = {
        "stage": v.stage,
        "model": v.model,
        "version": v.version,
        "symbol": v.symbol,
        "seq": v.seq,
        "ts": v.ts,
        "p_up": v.p_up,
        "outcomes": [[o.seq, o.label.value] for o in v.outcomes],
    }
    if v.drift is not None:  # only when drift monitoring has something to say
        d["drift"] = v.drift
    return d


def _stage_dict(sv: StageVote) -> dict[str, Any]:
    d = {
        "name": sv.name,
        "model": sv.model,
        "version": sv.version,
        "p_up": sv.p_up,
        "weight": sv.weight,
    }
    if sv.drift is not None:
        d["drift"] = sv.drift
    return d


def encode_vote(v: Vote) -> bytes:
    return orjson.dumps(vote_to_dict(v))


_VOTE_FIELDS = frozenset(("stage", "model", "version", "symbol", "seq", "ts", "p_up", "outcomes"))
_SIGNAL_FIELDS = frozenset(
    (
        "id",
        "symbol",
        "seq",
        "ts",
        "horizon_ns",
        "action",
        "p_up",
        "quorum_met",
        "stages",
        "missing",
        "config_hash",
    )
)
_STAGE_FIELDS = frozenset(("name", "model", "version", "p_up", "weight"))
_LABELS = {lbl.value: lbl for lbl in Label}
_ACTIONS = {a.value: a for a in Action}
_HEX = frozenset("0123456789abcdef")


def _object(
    d: Any, fields: frozenset[str], what: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A JSON object with exactly ``fields`` (every one required) plus any of ``optional``,
    nothing else (as the schema)."""
    if type(d) is not dict:
        raise DecodeError(f"{what} must be a JSON object")
    keys = d.keys()
    if keys != fields:
        missing = sorted(fields - keys)
        if missing:
            raise DecodeError(f"{what}: missing field {missing[0]!r}")
        if not keys - fields <= optional:
            raise _unknown(d, fields | optional, what)
    return d


_DRIFT = frozenset(("drift",))
_DRIFT_STATES = frozenset(("alarm", "muted"))


def _drift(d: dict[str, Any], what: str) -> str | None:
    v = d.get("drift")
    if v is None and "drift" not in d:
        return None
    if v not in _DRIFT_STATES:
        raise DecodeError(f"{what}: field 'drift' must be one of {sorted(_DRIFT_STATES)}")
    return str(v)


def _int(d: dict[str, Any], key: str, lo: int, what: str) -> int:
    v = d[key]
    if type(v) is not int or not lo <= v <= INT64_MAX:
        raise DecodeError(f"{what}: field {key!r} must be an integer in [{lo}, 2**63-1], got {v!r}")
    return v


def _str(d: dict[str, Any], key: str, what: str, non_empty: bool = False) -> str:
    v = d[key]
    if type(v) is not str or (non_empty and not v):
        raise DecodeError(
            f"{what}: field {key!r} must be a{' non-empty' if non_empty else ''} string"
        )
    return v


def _prob(d: dict[str, Any], key: str, what: str, nullable: bool) -> float | None:
    v = d[key]
    if v is None and nullable:
        return None
    if (type(v) is float or type(v) is int) and 0.0 <= v <= 1.0:
        return float(v)
    raise DecodeError(f"{what}: field {key!r} must be a number in [0, 1], got {v!r}")


def _outcome(x: Any) -> Outcome:
    if type(x) is not list or len(x) != 2:
        raise DecodeError(f"bad vote: an outcome must be [seq, label], got {x!r}")
    seq, lbl = x
    if type(seq) is not int or not 1 <= seq <= INT64_MAX:
        raise DecodeError(f"bad vote: outcome seq must be an integer >= 1, got {seq!r}")
    label = _LABELS.get(lbl) if type(lbl) is str else None
    if label is None:
        raise DecodeError(f"bad vote: outcome label must be up, down or flat, got {lbl!r}")
    return Outcome(seq, label)


def _loads(data: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"{what}: malformed JSON: {e}") from None


def decode_vote(data: bytes | str) -> Vote:
    """Strict like ``vote.schema.json``: exact fields, integer literals, p_up in [0, 1] or null."""
    w = "bad vote"
    d = _object(_loads(data, w), _VOTE_FIELDS, w, _DRIFT)
    outcomes = d["outcomes"]
    if type(outcomes) is not list:
        raise DecodeError(f"{w}: field 'outcomes' must be an array")
    return Vote(
        stage=_str(d, "stage", w),
        model=_str(d, "model", w),
        version=_int(d, "version", 0, w),
        symbol=_str(d, "symbol", w, non_empty=True),
        seq=_int(d, "seq", 1, w),
        ts=_int(d, "ts", 1, w),
        p_up=_prob(d, "p_up", w, nullable=True),
        outcomes=tuple(_outcome(x) for x in outcomes),
        drift=_drift(d, w),
    )


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
        "stages": [_stage_dict(sv) for sv in s.stages],
        "missing": list(s.missing),
        "config_hash": s.config_hash,
    }


def encode_signal(s: Signal) -> bytes:
    return orjson.dumps(signal_to_dict(s))


def _stage_vote(x: Any) -> StageVote:
    w = "bad signal: stage"
    d = _object(x, _STAGE_FIELDS, w, _DRIFT)
    weight = _prob(d, "weight", w, nullable=False)
    assert weight is not None
    return StageVote(
        name=_str(d, "name", w),
        model=_str(d, "model", w),
        version=_int(d, "version", 0, w),
        p_up=_prob(d, "p_up", w, nullable=True),
        weight=weight,
        drift=_drift(d, w),
    )


def decode_signal(data: bytes | str) -> Signal:
    """Strict like ``signal.schema.json``: exact fields, a 32-hex id, typed receipts."""
    w = "bad signal"
    d = _object(_loads(data, w), _SIGNAL_FIELDS, w)
    sid = _str(d, "id", w)
    if len(sid) != 32 or not _HEX.issuperset(sid):
        raise DecodeError(f"{w}: field 'id' must be 32 lowercase hex digits, got {sid!r}")
    action = _ACTIONS.get(d["action"]) if type(d["action"]) is str else None
    if action is None:
        raise DecodeError(f"{w}: field 'action' must be BUY, SELL or HOLD, got {d['action']!r}")
    p_up = _prob(d, "p_up", w, nullable=False)
    assert p_up is not None
    quorum_met = d["quorum_met"]
    if type(quorum_met) is not bool:
        raise DecodeError(f"{w}: field 'quorum_met' must be a boolean, got {quorum_met!r}")
    stages, missing = d["stages"], d["missing"]
    if type(stages) is not list:
        raise DecodeError(f"{w}: field 'stages' must be an array")
    if type(missing) is not list or not all(type(m) is str for m in missing):
        raise DecodeError(f"{w}: field 'missing' must be an array of strings")
    return Signal(
        id=sid,
        symbol=_str(d, "symbol", w, non_empty=True),
        seq=_int(d, "seq", 1, w),
        ts=_int(d, "ts", 1, w),
        horizon_ns=_int(d, "horizon_ns", 1, w),
        action=action,
        p_up=p_up,
        quorum_met=quorum_met,
        stages=tuple(_stage_vote(x) for x in stages),
        missing=tuple(missing),
        config_hash=_str(d, "config_hash", w),
    )


def reject_to_dict(r: Reject) -> dict[str, Any]:
    """The reject record of ``rejects.jsonl`` and the rejected-ticks topic (reject.schema.json)."""
    return {"file": r.source, "line": r.line, "reason": r.reason, "raw": r.raw}


def encode_reject(r: Reject) -> bytes:
    return orjson.dumps(reject_to_dict(r))
