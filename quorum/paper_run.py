"""The embedded driver of the paper trader: the backtest's ticks and signals, in event order.

For each tick the trader sees the tick first (orders that have arrived fill against it), then
the signal the kernel made of that tick (its order arrives ``latency_ms`` later, so it can never
fill on the quote the signal saw). Orders, fills and denials go to ``orders.jsonl`` /
``fills.jsonl`` as they happen; the equity is sampled once per second of event time into
``equity.jsonl`` (and kept in memory for the report: 86,400 points a day). :meth:`report`
sums it up for report.json's ``paper`` section.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from agents.paper import PaperTrader
from agents.paper_metrics import metrics
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order
from models.records import Signal, Tick

SAMPLE_NS = 1_000_000_000


def _order_dict(o: Order) -> dict[str, Any]:
    return {
        "type": "order",
        "id": o.id,
        "signal_id": o.signal_id,
        "symbol": o.symbol,
        "ts": o.ts,
        "arrival_ts": o.arrival_ts,
        "side": o.side,
        "size": o.size,
        "kind": o.kind,
        "limit_price": o.limit_price,
        "reason": o.reason,
        "mid_at_signal": o.mid,
    }


def _denial_dict(d: Denial) -> dict[str, Any]:
    return {
        "type": "denial",
        "order_id": d.order_id,
        "signal_id": d.signal_id,
        "symbol": d.symbol,
        "ts": d.ts,
        "reason": d.reason,
    }


class PaperSession:
    """One paper account driven by a backtest; files under ``out`` when given."""

    def __init__(self, cfg: PaperConfig, out: Path | None = None) -> None:
        self.cfg = cfg
        self.trader = PaperTrader(cfg)
        self.equity: list[tuple[int, float]] = []
        self._next_sample = 0
        self._files: list[IO[bytes]] = []
        self._orders: IO[bytes] | None = None
        self._fills: IO[bytes] | None = None
        self._equity: IO[bytes] | None = None
        if out is not None:
            self._orders = self._open(out / "orders.jsonl")
            self._fills = self._open(out / "fills.jsonl")
            self._equity = self._open(out / "equity.jsonl")
        # per order: the side, the mid at signal time and the signal's event time, for slippage
        self._orders_seen: dict[str, tuple[int, float | None, int]] = {}
        self._slip_sum = 0.0
        self._slip_arrival_sum = 0.0
        self._slip_arrival_w = 0.0
        self._slip_w = 0.0
        self._spread_sum = 0.0
        self._spread_n = 0
        self._latency_sum_ns = 0
        self._latency_n = 0

    def _open(self, path: Path) -> IO[bytes]:
        f = path.open("wb")
        self._files.append(f)
        return f

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    # --- feeding ---------------------------------------------------------------------------

    def tick(self, tick: Tick) -> None:
        for ev in self.trader.on_tick(tick):
            self._event(ev)
        if tick.ts >= self._next_sample:
            eq = self.trader.equity()
            self.equity.append((tick.ts, eq))
            if self._equity is not None:
                self._equity.write(
                    orjson.dumps({"ts": tick.ts, "equity": eq, "cash": self.trader.account.cash})
                    + b"\n"
                )
            self._next_sample = (tick.ts // SAMPLE_NS + 1) * SAMPLE_NS

    def signal(self, signal: Signal) -> None:
        book = self.trader.book(signal.symbol)
        for ev in self.trader.on_signal(signal, book.mid if book is not None else None):
            self._event(ev)

    def _event(self, ev: Order | Fill | Denial) -> None:
        if isinstance(ev, Fill):
            self._on_fill(ev)
            if self._fills is not None:
                self._fills.write(orjson.dumps(ev) + b"\n")  # a Fill's fields, in order
            return
        if isinstance(ev, Order):
            sign = 1 if ev.side == "buy" else -1
            self._orders_seen[ev.id] = (sign, ev.mid, ev.ts)
            line = _order_dict(ev)
        else:
            line = _denial_dict(ev)
        if self._orders is not None:
            self._orders.write(orjson.dumps(line) + b"\n")

    def _on_fill(self, f: Fill) -> None:
        seen = self._orders_seen.get(f.order_id)
        if seen is None:
            return
        sign, mid_at_signal, signal_ts = seen
        w = f.size * f.price
        # slippage in bps, positive = paid: buying above / selling below the reference mid
        if mid_at_signal:
            self._slip_sum += sign * (f.price / mid_at_signal - 1.0) * 1e4 * w
            self._slip_w += w
        # the trader's own book: the quote the order filled against
        book = self.trader.book(f.symbol)
        mid_now = book.mid if book is not None else None
        if mid_now:
            self._slip_arrival_sum += sign * (f.price / mid_now - 1.0) * 1e4 * w
            self._slip_arrival_w += w
        if mid_now and book is not None and book.ask is not None and book.bid is not None:
            self._spread_sum += (book.ask - book.bid) / mid_now * 1e4
            self._spread_n += 1
        self._latency_sum_ns += f.ts - signal_ts
        self._latency_n += 1

    # --- summing up ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        acct = self.trader.account
        marks = self.trader.marks()
        m = metrics(self.equity, (), acct.round_trips)
        equity = acct.equity(marks)
        net = equity - acct.starting_cash
        fees = acct.fees
        m.update(
            {
                "venue": self.cfg.venue,
                "starting_cash": acct.starting_cash,
                "equity": equity,
                "equity_conservative": self.trader.equity(conservative=True),
                "net_pnl": net,
                "gross_pnl": net + fees,
                "fees": fees,
                "realised_pnl": acct.realised,
                "unrealised_pnl": acct.unrealised(marks),
                "n_orders": acct.n_orders,
                "n_fills": acct.n_fills,
                "turnover": acct.turnover,
                "turnover_ratio": acct.turnover / acct.starting_cash,
                "slippage_bps_vs_mid_at_signal": (
                    self._slip_sum / self._slip_w if self._slip_w else None
                ),
                # the mid of the quote the order met on arrival (for a resting limit: the
                # latest quote when a trade printed through it)
                "slippage_bps_vs_mid_at_arrival": (
                    self._slip_arrival_sum / self._slip_arrival_w if self._slip_arrival_w else None
                ),
                "mean_spread_paid_bps": (
                    self._spread_sum / self._spread_n if self._spread_n else None
                ),
                "signal_to_fill_ms": (
                    self._latency_sum_ns / self._latency_n / 1e6 if self._latency_n else None
                ),
                "denied": dict(sorted(acct.denials.items())),
                "open_orders": len(self.trader.open_orders()),
                "positions": {
                    sym: {"size": p.size, "avg_price": p.avg_price}
                    for sym, p in sorted(acct.positions.items())
                    if abs(p.size) > 1e-12  # float dust of a closed position is flat
                },
                "halted": self.trader.halted,
            }
        )
        return m
