"""Paper-trading records: orders, fills, denials, positions and closed round trips.

Event times are integer nanoseconds from the market data (never the wall clock). Ids are
deterministic, so a replay (or a restart that re-runs the same input) produces the same ids:
``order_id(signal_id, reason, n)`` and ``fill_id(order_id, k)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from models.records import Side

OrderKind = Literal["market", "limit", "passive"]
OrderReason = Literal["entry", "exit", "flatten"]
Liquidity = Literal["taker", "maker"]


def order_id(signal_id: str, reason: str, n: int) -> str:
    return hashlib.sha256(f"{signal_id}|{reason}|{n}".encode()).hexdigest()[:24]


def fill_id(order_id: str, k: int) -> str:
    return hashlib.sha256(f"{order_id}|{k}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class Order:
    """An order sent at ``ts`` (the signal's event time, or the tick that triggered an exit),
    reaching the simulated venue at ``arrival_ts``.

    ``limit_price`` is None for market orders and for the marketable limits of
    ``order_type: limit``, whose price is the touch seen at arrival (known only then).
    ``mid`` is the mid at signal time (for the slippage metric), when known.
    """

    id: str
    signal_id: str
    symbol: str
    ts: int
    arrival_ts: int
    side: Side
    size: float
    kind: OrderKind
    limit_price: float | None
    reason: OrderReason
    mid: float | None = None


@dataclass(slots=True)
class Fill:
    id: str
    order_id: str
    signal_id: str
    symbol: str
    ts: int
    side: Side
    price: float
    size: float
    fee: float
    liquidity: Liquidity


@dataclass(slots=True)
class Denial:
    """An order refused (risk control) or ended unfilled (expired, protection)."""

    order_id: str
    signal_id: str
    symbol: str
    ts: int
    reason: str


@dataclass(slots=True)
class Position:
    """One net position: ``size`` signed in base units; ``realised_pnl`` gross of fees."""

    symbol: str
    size: float = 0.0
    avg_price: float = 0.0
    realised_pnl: float = 0.0
    fees: float = 0.0


@dataclass(slots=True)
class RoundTrip:
    """A position from flat back to flat (or to a flip). ``pnl`` is realised net of fees."""

    symbol: str
    open_ts: int
    close_ts: int
    side: Side
    max_size: float
    pnl: float
    fees: float
