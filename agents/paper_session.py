"""A paper account driven by ticks and signals: the trader, the canonical event order and the
execution statistics, shared by the embedded backtest and the Kafka paper agent. No I/O.

What the session makes (orders, denials, fills, positions, equity samples) goes to a
:class:`PaperSink` the driver attaches: files in the backtest, topics on Kafka. The sink is not
part of the state: the session pickles without it (the Kafka agent's checkpoint).

Equity is sampled once per second of event time (to the sink; kept in memory for the report
only when ``keep_equity``: 86,400 points a day). Slippage, the spread paid and the
signal-to-fill latency are accumulated per fill; the order facts they need are kept only while
the order is open.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol

from agents.paper import PaperTrader
from agents.paper_merge import Merger
from agents.paper_metrics import metrics
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order, Position
from models.records import Signal, Tick

__all__ = ["SAMPLE_NS", "PaperSession", "PaperSink", "denial_record", "order_record"]

SAMPLE_NS = 1_000_000_000


class PaperSink(Protocol):
    def order(self, record: dict[str, Any]) -> None:
        """An order or a denial (``type`` tells which), as :func:`order_record` makes it."""

    def fill(self, fill: Fill) -> None: ...

    def position(self, record: dict[str, Any]) -> None:
        """The symbol's position right after a fill (one record per fill)."""

    def equity(self, ts: int, equity: float, cash: float) -> None: ...


def order_record(o: Order) -> dict[str, Any]:
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


def denial_record(d: Denial) -> dict[str, Any]:
    return {
        "type": "denial",
        "order_id": d.order_id,
        "signal_id": d.signal_id,
        "symbol": d.symbol,
        "ts": d.ts,
        "reason": d.reason,
    }


class _NullSink:
    def order(self, record: dict[str, Any]) -> None:
        pass

    def fill(self, fill: Fill) -> None:
        pass

    def position(self, record: dict[str, Any]) -> None:
        pass

    def equity(self, ts: int, equity: float, cash: float) -> None:
        pass


class PaperSession:
    """One paper account; feed it with :meth:`tick` / :meth:`signal`, then :meth:`drain`."""

    def __init__(
        self,
        cfg: PaperConfig,
        triggers: Iterable[str] = ("trade",),
        *,
        partitions: Iterable[int] = (0,),
        keep_equity: bool = True,
    ) -> None:
        self.cfg = cfg
        self.trader = PaperTrader(cfg)
        self.merger = Merger(frozenset(triggers))
        for p in partitions:
            self.merger.add_partition(p)
        self.keep_equity = keep_equity
        self.equity: list[tuple[int, float]] = []
        self.sink: PaperSink = _NullSink()
        self._next_sample = 0
        # per open order: the side, the mid at signal time and the signal's event time
        self._orders_seen: dict[str, tuple[int, float | None, int]] = {}
        self._slip_sum = 0.0
        self._slip_arrival_sum = 0.0
        self._slip_arrival_w = 0.0
        self._slip_w = 0.0
        self._spread_sum = 0.0
        self._spread_n = 0
        self._latency_sum_ns = 0
        self._latency_n = 0
        self.last_ts: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["sink"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.sink = _NullSink()

    # --- feeding ---------------------------------------------------------------------------

    def tick(self, partition: int, tick: Tick) -> None:
        self.merger.tick(partition, tick)

    def signal(self, signal: Signal) -> None:
        self.merger.signal(signal)

    def drain(self, idle: Collection[int] = (), limit: int | None = None) -> int:
        """Apply the events the merger releases, at most ``limit`` (the rest stay held, so a
        driver can checkpoint in between); returns how many."""
        n = 0
        for tick, signal in self.merger.ready(idle):
            n += 1
            if tick is not None:
                self._tick(tick)
            if signal is not None:
                book = self.trader.book(signal.symbol)
                for ev in self.trader.on_signal(signal, book.mid if book is not None else None):
                    self._event(ev)
            if limit is not None and n >= limit:
                break  # the merger's state is whole after each step it yields
        return n

    def finish(self) -> int:
        """The input has ended: release everything held."""
        return self.drain(idle=tuple(self.merger.partitions()))

    # --- control ---------------------------------------------------------------------------

    def flatten(self) -> int:
        """Cancel every open order and send orders closing every position, at the event time
        of the last event applied; returns the number of orders."""
        ts = self.last_ts if self.last_ts is not None else 0
        events = self.trader.flatten(ts)
        for ev in events:
            self._event(ev)
        return sum(isinstance(ev, Order) for ev in events)

    # --- internals -------------------------------------------------------------------------

    def _tick(self, tick: Tick) -> None:
        events = self.trader.on_tick(tick)
        after = iter(self.trader.fill_positions)  # one per fill, in order
        for ev in events:
            self._event(ev)
            if isinstance(ev, Fill):
                self.sink.position(self.position_record(ev.symbol, ev.ts, next(after)))
        self.last_ts = tick.ts
        if tick.ts >= self._next_sample:
            eq = self.trader.equity()
            if self.keep_equity:
                self.equity.append((tick.ts, eq))
            self.sink.equity(tick.ts, eq, self.trader.account.cash)
            self._next_sample = (tick.ts // SAMPLE_NS + 1) * SAMPLE_NS

    def _event(self, ev: Order | Fill | Denial) -> None:
        if isinstance(ev, Fill):
            self._on_fill(ev)
            self.sink.fill(ev)
            return
        if isinstance(ev, Order):
            sign = 1 if ev.side == "buy" else -1
            self._orders_seen[ev.id] = (sign, ev.mid, ev.ts)
            self.sink.order(order_record(ev))
        else:
            self._orders_seen.pop(ev.order_id, None)
            self.sink.order(denial_record(ev))

    def position_record(self, symbol: str, ts: int, pos: Position | None = None) -> dict[str, Any]:
        """The position (by default the current one; a fill's snapshot when given) with the
        mark, the equity and the cash as they are after the tick being applied."""
        acct = self.trader.account
        if pos is None:
            pos = acct.positions.get(symbol)
        marks = self.trader.marks()
        size = pos.size if pos is not None and abs(pos.size) > 1e-12 else 0.0
        return {
            "symbol": symbol,
            "ts": ts,
            "size": size,
            "avg_price": pos.avg_price if pos is not None and size else 0.0,
            "realised_pnl": pos.realised_pnl if pos is not None else 0.0,
            "fees": pos.fees if pos is not None else 0.0,
            "mark": marks.get(symbol),
            "equity": acct.equity(marks),
            "cash": acct.cash,
        }

    def _on_fill(self, f: Fill) -> None:
        seen = self._orders_seen.get(f.order_id)
        if seen is None:
            return
        if f.order_id not in self.trader.open_ids():
            del self._orders_seen[f.order_id]  # its last fill
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
                "merge": self.merger.counters.as_dict(),
            }
        )
        return m
