"""The paper trader: signals → orders → simulated fills → account. Pure logic, no I/O.

Event time comes from the ticks and signals (integer ns), never the wall clock, so a replay is
deterministic; every piece of state is a slotted dataclass (or a builtin container of them) and
the whole trader pickles.

Rules (see also ``config/paper.py``):

- **Strategy.** BUY/SELL sizes ``notional_per_signal / price`` (price = the mid given with the
  signal, else the book's mid, else the last trade). ``exit: horizon``: every entry is one lot,
  closed by an exit order once event time reaches ``signal.ts + horizon_ns`` (an unfilled
  rest of the entry is cancelled then: denial ``horizon``); lots net into one position per
  symbol. ``exit: opposite``: an opposite signal closes the whole position (reason ``exit``;
  its open entries are cancelled: denial ``opposite``) and, long/short, opens the other way.
  ``long_only``: a SELL never opens a short. HOLD does nothing; a signal id seen before does
  nothing (ids are remembered for ``SEEN_WINDOW_NS`` of event time, so the state stays
  bounded; the Kafka agent also drops a symbol's signals at or below the last sequence number
  it paired, however late they come).
- **Latency.** ``arrival_ts = ts + latency_ms`` (or, with ``latency_by_venue``, the venue's
  fixed or lognormal latency, drawn per order from its id: ``agents.paper_latency``). At
  arrival the order takes the touch it sees as its reference (the latest quote at or before
  arrival, unless it is older than ``stale_quote_ms``: then there is none and the fill quote is
  the reference); it fills against the first quote at or after arrival (never the quote the
  signal saw: that one is older). With no such quote within ``max_wait_ms`` of arrival it
  expires (denial ``expired``).
- **Fills.** A taker walks the displayed size (``agents.paper_fills.walk``) up to the
  protection price (reference ± ``protection_bps``); a market order's rest beyond it is cancelled
  (denial ``protection``). A limit order is a marketable limit at the reference touch: the taker
  part fills at or better than it, its rest waits passively at that price and fills (maker, at its
  price, capped at the trade's size) only on a trade printing through it, never on a touch, until
  ``max_wait_ms`` after arrival (then denial ``expired``). A passive order joins its own side of
  the reference touch (a buy at the bid) and only ever fills as a maker, the same way; with
  ``queue_position`` the size displayed there at placement is ahead of it, trades at its price
  consume that queue first and the excess fills it (a trade through the price clears the
  queue). A quote crossing a resting order does not fill it: only trades do. Fees: taker/maker
  bps of the notional.
  Exits and flatten orders are always market orders and work until done: they never expire,
  and their rest beyond the protection price waits for the next quote (its new reference), so
  a horizon exit cannot leave a stray position behind.
- **Risk** (checked in this order; a denial names the reason and is counted in
  ``account.denials``): ``halted`` (no new orders at all, horizon exits included: ``flatten``
  closes what is left); ``max_orders_per_minute`` (entries only; every entry and exit counts
  towards it); ``max_order_notional`` (entries; deny); ``daily_loss_limit`` (once the equity
  since the UTC day start is down by more than the limit, the rest of that day is reduce-only:
  entries that add exposure are denied); ``max_position_notional`` (entries are *clipped* to the
  room left on the projected position, filled + open; denied when no room is left). Exits and
  flatten orders only reduce exposure and skip the notional, rate and loss checks.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from agents.paper_account import Account
from agents.paper_fills import Book, walk
from agents.paper_latency import latency_ns
from agents.paper_metrics import metrics
from config.paper import PaperConfig
from models.orders import Denial, Fill, Order, OrderReason, Position, fill_id, order_id
from models.records import Action, Quote, Side, Signal, Tick, Trade

__all__ = ["Account", "PaperTrader", "metrics"]

NS_PER_MS = 1_000_000
NS_PER_MINUTE = 60_000_000_000
#: How long (event time) a signal id is remembered for de-duplication.
SEEN_WINDOW_NS = 2 * NS_PER_MINUTE
_EPS = 1e-12


@dataclass(slots=True)
class _Lot:
    """One horizon entry: what of it filled, and when it must be closed."""

    signal_id: str
    symbol: str
    side: Side
    due_ts: int
    entry_id: str
    filled: float = 0.0
    done: bool = False


@dataclass(slots=True)
class _Open:
    """An order at (or on its way to) the simulated venue."""

    order: Order
    remaining: float
    expires_ts: int
    arrived: bool = False
    ref: float | None = None
    limit: float | None = None
    passive: bool = False
    queue: float = 0.0  # a passive order's displayed size ahead of it at its price
    n_fills: int = 0
    lot: _Lot | None = None


@dataclass(slots=True)
class _State:
    books: dict[str, Book] = field(default_factory=dict)
    open: dict[str, _Open] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)  # (ts, id), oldest first
    lots: list[tuple[int, int, _Lot]] = field(default_factory=list)
    lot_seq: int = 0
    recent: deque[int] = field(default_factory=deque)
    now: int | None = None
    halted: bool = False
    reduce_only_day: int | None = None
    flattens: int = 0


class PaperTrader:
    __slots__ = ("_s", "account", "cfg", "fill_positions")

    def __init__(self, cfg: PaperConfig) -> None:
        self.cfg = cfg
        self.account = Account(cfg.starting_cash)
        self._s = _State()
        #: the symbol's position right after each fill of the last ``on_tick``, in fill order
        self.fill_positions: list[Position] = []

    # --- control ---------------------------------------------------------------------------
    @property
    def halted(self) -> bool:
        return self._s.halted

    @property
    def reduce_only(self) -> bool:
        s = self._s
        return s.reduce_only_day is not None and s.reduce_only_day == self.account.day

    def halt(self) -> None:
        self._s.halted = True

    def resume(self) -> None:
        self._s.halted = False

    def open_orders(self) -> list[Order]:
        return [o.order for o in self._s.open.values()]

    def open_ids(self) -> Collection[str]:
        return self._s.open.keys()

    def book(self, symbol: str) -> Book | None:
        return self._s.books.get(symbol)

    def marks(self, conservative: bool = False) -> dict[str, float]:
        """Mark prices: the mid, or conservatively the bid for longs and the ask for shorts;
        the last trade for a symbol without quotes."""
        out: dict[str, float] = {}
        for sym, b in self._s.books.items():
            m: float | None
            if conservative and b.bid is not None and b.ask is not None:
                pos = self.account.positions.get(sym)
                m = b.bid if pos is None or pos.size >= 0 else b.ask
            else:
                m = b.mid
            if m is None:
                m = b.last_trade
            if m is not None:
                out[sym] = m
        return out

    def equity(self, conservative: bool = False) -> float:
        return self.account.equity(self.marks(conservative))

    def flatten(self, ts: int) -> list[Order | Denial]:
        """Cancel every open order (each ends with a denial ``flatten``) and send market orders
        closing every position (allowed when halted; no risk check)."""
        s = self._s
        self._clock(ts)
        out: list[Order | Denial] = [
            self._deny_order(o.order, ts, "flatten") for o in s.open.values()
        ]
        s.open.clear()
        for _, _, lot in s.lots:
            lot.done = True
        s.lots.clear()
        s.flattens += 1
        tag = f"flatten#{s.flattens}@{ts}"
        for n, sym in enumerate(sorted(self.account.positions)):
            pos = self.account.positions[sym]
            if abs(pos.size) <= _EPS:
                continue
            side: Side = "sell" if pos.size > 0 else "buy"
            book = s.books.get(sym)
            out.append(
                self._send(
                    tag, sym, ts, side, abs(pos.size), "flatten", n, book.mid if book else None
                )
            )
        return out

    # --- signals ---------------------------------------------------------------------------
    def on_signal(self, signal: Signal, mid: float | None) -> list[Order | Denial]:
        s, cfg = self._s, self.cfg
        if signal.id in s.seen:
            return []
        s.seen.add(signal.id)
        order = s.seen_order
        order.append((signal.ts, signal.id))
        while order[0][0] < signal.ts - SEEN_WINDOW_NS:
            s.seen.discard(order.popleft()[1])
        if signal.action == Action.HOLD:
            return []
        self._clock(signal.ts)
        sym = signal.symbol
        side: Side = "buy" if signal.action == Action.BUY else "sell"
        sign = 1.0 if side == "buy" else -1.0
        out: list[Order | Denial] = []
        if cfg.exit == "opposite" and self._projected(sym) * sign < -_EPS:
            # the opposite signal: cancel the open entries, close what is held or on its way
            for oid in [k for k, o in s.open.items() if o.order.symbol == sym]:
                if s.open[oid].order.reason == "entry":
                    out.append(self._deny_order(s.open.pop(oid).order, signal.ts, "opposite"))
            held = self._projected(sym)  # zero when only entries were pending
            if held * sign < -_EPS and s.halted:
                out.append(self._deny(order_id(signal.id, "exit", 0), signal, "halted"))
            elif held * sign < -_EPS:
                out.append(self._send(signal.id, sym, signal.ts, side, abs(held), "exit", 0, mid))
        if cfg.mode == "long_only" and side == "sell":
            return out
        out.append(self._entry(signal, side, mid))
        return out

    def _entry(self, signal: Signal, side: Side, mid: float | None) -> Order | Denial:
        s, cfg = self._s, self.cfg
        sym = signal.symbol
        oid = order_id(signal.id, "entry", 0)
        sign = 1.0 if side == "buy" else -1.0
        book = s.books.get(sym)
        price = mid if mid is not None else None
        if price is None and book is not None:
            price = book.mid if book.mid is not None else book.last_trade
        if price is None or price <= 0:
            return self._deny(oid, signal, "no_price")
        if s.halted:
            return self._deny(oid, signal, "halted")
        while s.recent and signal.ts - s.recent[0] >= NS_PER_MINUTE:
            s.recent.popleft()
        if len(s.recent) >= cfg.max_orders_per_minute:
            return self._deny(oid, signal, "max_orders_per_minute")
        size = cfg.notional_per_signal / price
        if size * price > cfg.max_order_notional * (1 + 1e-9):
            return self._deny(oid, signal, "max_order_notional")
        proj = self._projected(sym) * sign
        if self.reduce_only and proj >= -_EPS:
            return self._deny(oid, signal, "daily_loss_limit")
        room = cfg.max_position_notional / price - proj
        if room <= size * 1e-9:
            return self._deny(oid, signal, "max_position_notional")
        size = min(size, room)
        lot = None
        if cfg.exit == "horizon":
            lot = _Lot(signal.id, sym, side, signal.ts + signal.horizon_ns, oid)
            s.lot_seq += 1
            heapq.heappush(s.lots, (lot.due_ts, s.lot_seq, lot))
        return self._send(signal.id, sym, signal.ts, side, size, "entry", 0, mid, lot)

    # --- ticks -----------------------------------------------------------------------------
    def on_tick(self, tick: Tick) -> list[Fill | Order | Denial]:
        s, cfg = self._s, self.cfg
        self.fill_positions.clear()
        ts = tick.ts
        self._clock(ts)
        out: list[Fill | Order | Denial] = []
        sym = tick.symbol
        book = s.books.get(sym)
        if book is None:
            book = s.books[sym] = Book()
        mine = [o for o in s.open.values() if o.order.symbol == sym]
        for o in mine:
            if not o.arrived and o.order.arrival_ts < ts:
                self._arrive(o, book)
        if isinstance(tick, Quote):
            book.on_quote(tick)
        else:
            book.on_trade(tick)
        # exits due now, sent at the mid this tick makes (they fill on a later quote unless
        # the latency is zero)
        for order in self._horizon_exits(ts, out):
            if order.symbol == sym:
                mine.append(s.open[order.id])
        for o in mine:
            if not o.arrived and o.order.arrival_ts <= ts:
                self._arrive(o, book)
        self._expire(ts, out)
        if isinstance(tick, Quote):
            for o in mine:
                if o.arrived and not o.passive and o.order.id in s.open:
                    if o.order.kind == "passive":  # no fresh quote at arrival: this one
                        self._join(o, book)
                    else:
                        self._take(o, book, tick, out)
        else:
            self._trade_through(mine, tick, out)
        self.account.mark(ts, self.equity())
        if self.account.day_pnl < -cfg.daily_loss_limit:
            s.reduce_only_day = self.account.day
        return out

    def _horizon_exits(self, ts: int, out: list[Fill | Order | Denial]) -> list[Order]:
        s = self._s
        sent: list[Order] = []
        while s.lots and s.lots[0][0] <= ts:
            _, _, lot = heapq.heappop(s.lots)
            if lot.done:
                continue
            lot.done = True
            rest = s.open.pop(lot.entry_id, None)
            if rest is not None:  # the entry's unfilled rest ends with its horizon
                out.append(self._deny_order(rest.order, ts, "horizon"))
            if lot.filled <= _EPS:
                continue
            side: Side = "sell" if lot.side == "buy" else "buy"
            if s.halted:
                self.account.count_denial("halted")
                oid = order_id(lot.signal_id, "exit", 0)
                out.append(Denial(oid, lot.signal_id, lot.symbol, ts, "halted"))
                continue
            book = s.books.get(lot.symbol)
            mid = book.mid if book is not None else None
            order = self._send(lot.signal_id, lot.symbol, ts, side, lot.filled, "exit", 0, mid)
            out.append(order)
            sent.append(order)
        return sent

    def _arrive(self, o: _Open, book: Book) -> None:
        o.arrived = True
        stale = self.cfg.stale_quote_ms * NS_PER_MS
        if book.quote_ts is not None and o.order.arrival_ts - book.quote_ts <= stale:
            o.ref = book.touch(o.order.side)
        if o.order.kind == "limit":
            o.limit = o.ref
        elif o.order.kind == "passive" and o.ref is not None:
            self._join(o, book)

    @staticmethod
    def _join(o: _Open, book: Book) -> None:
        """A passive order joins its own side of the book's touch (a buy at the bid), behind
        the size displayed there."""
        buy = o.order.side == "buy"
        o.limit = book.bid if buy else book.ask
        o.queue = book.bid_size if buy else book.ask_size
        o.passive = o.limit is not None

    def _expire(self, ts: int, out: list[Fill | Order | Denial]) -> None:
        s = self._s
        late = [k for k, o in s.open.items() if ts > o.expires_ts and o.order.reason == "entry"]
        for oid in late:
            o = s.open.pop(oid)
            out.append(self._deny_order(o.order, ts, "expired"))

    def _take(self, o: _Open, book: Book, q: Quote, out: list[Fill | Order | Denial]) -> None:
        cfg = self.cfg
        side = o.order.side
        touch = book.touch(side)
        if o.ref is None:
            o.ref = touch
        if o.order.kind == "limit" and o.limit is None:
            o.limit = o.ref
        if o.ref is None:
            return
        sign = 1.0 if side == "buy" else -1.0
        worst = o.ref * (1.0 + sign * cfg.protection_bps * 1e-4)
        if o.limit is not None:
            worst = min(worst, o.limit) if side == "buy" else max(worst, o.limit)
        shown = book.ask_size if side == "buy" else book.bid_size
        for price, size in walk(book, side, o.remaining, worst, cfg.impact_bps):
            self._fill(o, q.ts, price, size, "taker", out)
        if o.order.id not in self._s.open:
            return
        if o.order.kind == "limit":
            o.passive = True
        elif shown > 0.0 and o.order.reason == "entry":
            del self._s.open[o.order.id]
            out.append(self._deny_order(o.order, q.ts, "protection"))
        else:  # an exit keeps working: the next quote is its new reference
            o.ref = None

    def _trade_through(self, mine: list[_Open], t: Trade, out: list[Fill | Order | Denial]) -> None:
        """Resting orders fill as makers, at their price, from the trade's size (shared by
        them, oldest first): on a trade printing through the price; with ``queue_position``,
        a passive order also on a trade at its price, once the queue ahead has traded."""
        taken = 0.0
        queue = self.cfg.queue_position
        for o in mine:
            if not o.passive or o.limit is None or o.order.id not in self._s.open:
                continue
            if t.side == o.order.side:  # an aggressor on the order's own side never meets it
                continue
            d = t.price - o.limit
            tol = 1e-12 * abs(o.limit)
            if (d < -tol) if o.order.side == "buy" else (d > tol):  # through: the level is gone
                o.queue = 0.0
                avail = t.size - taken
            elif queue and o.order.kind == "passive" and abs(d) <= tol:
                if t.size <= o.queue:
                    o.queue -= t.size
                    continue
                avail = t.size - o.queue - taken
                o.queue = 0.0
            else:
                continue
            size = min(o.remaining, avail)
            if size <= 0.0:
                continue
            taken += size
            self._fill(o, t.ts, o.limit, size, "maker", out)

    def _fill(
        self,
        o: _Open,
        ts: int,
        price: float,
        size: float,
        liq: str,
        out: list[Fill | Order | Denial],
    ) -> None:
        cfg, order = self.cfg, o.order
        bps = cfg.taker_bps if liq == "taker" else cfg.maker_bps
        f = Fill(
            id=fill_id(order.id, o.n_fills),
            order_id=order.id,
            signal_id=order.signal_id,
            symbol=order.symbol,
            ts=ts,
            side=order.side,
            price=price,
            size=size,
            fee=price * size * bps * 1e-4,
            liquidity="taker" if liq == "taker" else "maker",
        )
        o.n_fills += 1
        o.remaining -= size
        if o.lot is not None:
            o.lot.filled += size
        self.account.apply(f)
        p = self.account.positions[f.symbol]
        self.fill_positions.append(replace(p))
        out.append(f)
        if o.remaining <= order.size * 1e-12:
            del self._s.open[order.id]

    # --- helpers ---------------------------------------------------------------------------
    def _clock(self, ts: int) -> None:
        s = self._s
        if s.now is None or ts > s.now:
            s.now = ts

    def _projected(self, sym: str) -> float:
        pos = self.account.positions.get(sym)
        total = pos.size if pos is not None else 0.0
        for o in self._s.open.values():
            if o.order.symbol == sym:
                total += o.remaining if o.order.side == "buy" else -o.remaining
        return total

    def _send(
        self,
        signal_id: str,
        sym: str,
        ts: int,
        side: Side,
        size: float,
        reason: OrderReason,
        n: int,
        mid: float | None,
        lot: _Lot | None = None,
    ) -> Order:
        cfg, s = self.cfg, self._s
        oid = order_id(signal_id, reason, n)
        arrival = ts + latency_ns(cfg, oid)
        order = Order(
            id=oid,
            signal_id=signal_id,
            symbol=sym,
            ts=ts,
            arrival_ts=arrival,
            side=side,
            size=size,
            kind=cfg.order_type if reason == "entry" else "market",
            limit_price=None,
            reason=reason,
            mid=mid,
        )
        s.open[order.id] = _Open(order, size, arrival + round(cfg.max_wait_ms * NS_PER_MS), lot=lot)
        if reason != "flatten":
            s.recent.append(ts)
        self.account.n_orders += 1
        return order

    def _deny(self, oid: str, signal: Signal, reason: str) -> Denial:
        self.account.count_denial(reason)
        return Denial(oid, signal.id, signal.symbol, signal.ts, reason)

    def _deny_order(self, order: Order, ts: int, reason: str) -> Denial:
        self.account.count_denial(reason)
        return Denial(order.id, order.signal_id, order.symbol, ts, reason)
