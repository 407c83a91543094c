"""Domain records: what flows through the pipeline.

Every record carries an integer-nanosecond event time (``ts``) taken from the market data,
never from the wall clock, so that replays are deterministic.

Records are treated as immutable but are not ``frozen``: a frozen dataclass costs about a
microsecond more per construction, and the hot path builds several per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

Side = Literal["buy", "sell"]


@dataclass(slots=True)
class Trade:
    """A trade print. ``side`` is the aggressor's side when the venue tells it."""

    symbol: str
    ts: int
    price: float
    size: float
    side: Side | None = None

    kind: ClassVar[str] = "trade"


@dataclass(slots=True)
class Quote:
    """A best bid/ask update (top of book)."""

    symbol: str
    ts: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    kind: ClassVar[str] = "quote"

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) * 0.5


Tick = Trade | Quote


class Label(StrEnum):
    """Direction of the reference price over the horizon."""

    UP = "up"
    DOWN = "down"
    FLAT = "flat"


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


@dataclass(slots=True)
class Outcome:
    """The realised label of the trigger tick ``seq`` of ``symbol``."""

    seq: int
    label: Label


@dataclass(slots=True)
class Vote:
    """One stage's view of one trigger tick.

    ``p_up`` is None while the stage abstains (warming up). ``outcomes`` are the labels this
    stage resolved since its previous vote, so the voting agent learns from realised outcomes
    without reading ticks itself.
    """

    stage: str
    model: str
    version: int
    symbol: str
    seq: int
    ts: int
    p_up: float | None
    outcomes: tuple[Outcome, ...] = ()
    drift: str | None = None  # "alarm" on the vote after a drift alarm, "muted" while muted


@dataclass(slots=True)
class StageVote:
    """The receipt line of one stage inside a signal."""

    name: str
    model: str
    version: int
    p_up: float | None
    weight: float
    drift: str | None = None  # the stage's drift state: None, "alarm" (just fired) or "muted"


@dataclass(slots=True)
class Signal:
    """The ensemble's decision for one trigger tick, with the receipt that explains it."""

    id: str
    symbol: str
    seq: int
    ts: int
    horizon_ns: int
    action: Action
    p_up: float
    quorum_met: bool
    stages: tuple[StageVote, ...]
    missing: tuple[str, ...]
    config_hash: str


@dataclass(slots=True)
class Reject:
    """An input we refused, with where it came from and why."""

    source: str
    line: int
    reason: str
    raw: str = ""


@dataclass(slots=True)
class ModelEvent:
    """Something that happened to one stage's model for one symbol, at event time ``ts``:
    a drift alarm, a reset, a mute or an unmute. The audit log records each."""

    kind: str
    stage: str
    symbol: str
    ts: int
    detail: dict[str, Any]
