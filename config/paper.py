"""Paper-trading configuration (the ``paper:`` section): frozen, validated, defaults in code.

``fees_bps`` maps a venue to ``(taker, maker)`` in basis points of the fill notional, from the
venues' public base tiers (check the current schedules before relying on them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class PaperConfigError(ValueError):
    """A paper config file that cannot be used; the message names the file and the key."""


def _default_fees() -> dict[str, tuple[float, float]]:
    # (taker, maker) bps: Binance spot 0.10/0.10 %, Binance USD-M 0.05/0.02 %, Coinbase
    # Advanced base tier 0.60/0.40 %
    return {"binance": (10.0, 10.0), "binance-usdm": (5.0, 2.0), "coinbase": (60.0, 40.0)}


class LatencyModel(BaseModel):
    """One venue's order-entry latency: ``fixed`` at the median, or ``lognormal`` around it
    (``sigma`` in log space: the 84th percentile is median × e^sigma), capped at ``max_ms``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dist: Literal["fixed", "lognormal"] = "fixed"
    median_ms: float = Field(ge=0)
    sigma: float = Field(default=0.5, ge=0, le=5)
    max_ms: float | None = Field(default=None, ge=0)


class PaperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    starting_cash: float = Field(default=100_000.0, gt=0)
    notional_per_signal: float = Field(default=1_000.0, gt=0)
    # per symbol, on the projected position (filled + open orders); entries beyond it are clipped
    max_position_notional: float = Field(default=5_000.0, gt=0)
    mode: Literal["long_only", "long_short"] = "long_short"
    # horizon: each entry is closed once its signal's horizon has passed;
    # opposite: the position is held until an opposite signal closes (and, long/short, reverses) it
    exit: Literal["horizon", "opposite"] = "horizon"
    # limit: a marketable limit at the touch seen at arrival (a taker); its unfilled rest waits
    # passively at that price (maker, filled by trades printing through it) for max_wait_ms.
    # passive: a limit joining the order's own side of the touch at arrival (a buy at the bid),
    # filled only as a maker by trades (see queue_position), for max_wait_ms
    order_type: Literal["market", "limit", "passive"] = "market"
    # passive orders: False fills only on trades printing through the price (the touch is not a
    # fill); True also on trades at the price once the displayed size ahead at placement has
    # traded there (that queue shrinks by same-price trades only)
    queue_position: bool = False
    # the latency of every order, unless latency_by_venue has the account's venue
    latency_ms: float = Field(default=100.0, ge=0)
    latency_by_venue: dict[str, LatencyModel] = Field(default_factory=dict)
    # None: each displayed-size level beyond the touch is one tick worse (tick = the smallest
    # positive price increment seen for the symbol, or 1 bps of the price while unknown)
    impact_bps: float | None = Field(default=None, ge=0)
    protection_bps: float = Field(default=50.0, ge=0)
    stale_quote_ms: float = Field(default=2_000.0, gt=0)
    max_wait_ms: float = Field(default=5_000.0, gt=0)
    venue: str = "binance"
    fees_bps: dict[str, tuple[float, float]] = Field(default_factory=_default_fees)
    max_order_notional: float = Field(default=5_000.0, gt=0)
    daily_loss_limit: float = Field(default=1_000.0, gt=0)
    max_orders_per_minute: int = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _venue_has_fees(self) -> PaperConfig:
        if self.venue not in self.fees_bps:
            known = ", ".join(sorted(self.fees_bps))
            raise ValueError(f"venue {self.venue!r} has no fees_bps entry (known: {known})")
        return self

    @property
    def taker_bps(self) -> float:
        return self.fees_bps[self.venue][0]

    @property
    def maker_bps(self) -> float:
        return self.fees_bps[self.venue][1]


def load_paper_config(path: Path | str | None = None) -> PaperConfig:
    """The defaults when ``path`` is None; else a YAML mapping of fields, or one with a
    ``paper:`` section (so the pipeline's config file may carry it)."""
    if path is None:
        return PaperConfig()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PaperConfigError(f"{p}: no such config file") from None
    except yaml.YAMLError as e:
        raise PaperConfigError(f"{p}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if isinstance(raw, dict) and "paper" in raw:
        raw = raw["paper"] if raw["paper"] is not None else {}
    if not isinstance(raw, dict):
        raise PaperConfigError(f"{p}: the paper config must be a mapping")
    try:
        return PaperConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"{p}: invalid paper configuration"]
        for item in err.errors():
            loc = ".".join(str(x) for x in item["loc"]) or "<root>"
            lines.append(f"  {loc}: {item['msg']}")
        raise PaperConfigError("\n".join(lines)) from None
