"""Feature extractors, one per family, each holding one symbol's rolling state.

All decays run on event time (nanoseconds between ticks), never on tick counts, so a burst
of quotes does not age the state faster than a quiet minute does. ``update`` is called on
every tick; ``features`` only on trigger ticks, so quotes stay cheap.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from models.records import Quote, Tick, Trade
from models.trade_sign import RollSpread, TradeSigner

_NS = 1e9


def _decay(dt_ns: int, tau_s: float) -> float:
    return math.exp(-dt_ns / (tau_s * _NS)) if dt_ns > 0 else 1.0


class Extractor:
    """Base class: names the features it can compute."""

    FEATURES: ClassVar[tuple[str, ...]] = ()

    def update(self, tick: Tick, ref: float) -> None:
        """Apply ``tick``; ``ref`` is the reference price after it (mid, else last trade)."""
        raise NotImplementedError

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        raise NotImplementedError


class Microstructure(Extractor):
    """Spread, top-of-book imbalance, size-weighted mid vs mid, aggressor-flow imbalance.

    A trade's side is the exchange's when given, else the :class:`TradeSigner`'s (Lee–Ready
    with the quote in force, the tick rule without one); ``signing`` counts the rules used.
    """

    FEATURES = (
        "spread_bps",
        "imbalance",
        "weighted_mid_bps",
        "flow_2s",
        "flow_10s",
        "trade_sign",
    )

    def __init__(self) -> None:
        self.bid = 0.0
        self.ask = 0.0
        self.bid_size = 0.0
        self.ask_size = 0.0
        self.last_ts = 0
        self.buy_2s = 0.0
        self.sell_2s = 0.0
        self.buy_10s = 0.0
        self.sell_10s = 0.0
        self.trade_sign = 0.0
        self.signer = TradeSigner()

    @property
    def signing(self) -> dict[str, int]:
        """Trades signed per rule (``models.trade_sign.RULES``)."""
        return self.signer.counts

    def update(self, tick: Tick, ref: float) -> None:
        if isinstance(tick, Quote):
            self.bid, self.ask = tick.bid, tick.ask
            self.bid_size, self.ask_size = tick.bid_size, tick.ask_size
            return
        dt = tick.ts - self.last_ts
        self.last_ts = tick.ts
        d2, d10 = _decay(dt, 2.0), _decay(dt, 10.0)
        sign = self.signer.sign(tick, self.bid, self.ask)[0]  # the exchange's side when given
        buy = tick.size if sign > 0.0 else 0.0
        sell = tick.size if sign < 0.0 else 0.0
        self.buy_2s = self.buy_2s * d2 + buy
        self.sell_2s = self.sell_2s * d2 + sell
        self.buy_10s = self.buy_10s * d10 + buy
        self.sell_10s = self.sell_10s * d10 + sell
        self.trade_sign = sign

    @staticmethod
    def _flow(buy: float, sell: float) -> float:
        # both sides decay alike, so the ratio needs no decay to the current time
        total = buy + sell
        return (buy - sell) / total if total > 0.0 else 0.0

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        bid, ask = self.bid, self.ask
        out: dict[str, float] = {}
        mid = (bid + ask) * 0.5
        depth = self.bid_size + self.ask_size
        for name in names:
            if name == "spread_bps":
                out[name] = (ask - bid) / mid * 1e4 if mid > 0.0 else 0.0
            elif name == "imbalance":
                out[name] = (self.bid_size - self.ask_size) / depth if depth > 0.0 else 0.0
            elif name == "weighted_mid_bps":
                if depth > 0.0 and mid > 0.0:
                    micro = (bid * self.ask_size + ask * self.bid_size) / depth
                    out[name] = (micro - mid) / mid * 1e4
                else:
                    out[name] = 0.0
            elif name == "flow_2s":
                out[name] = self._flow(self.buy_2s, self.sell_2s)
            elif name == "flow_10s":
                out[name] = self._flow(self.buy_10s, self.sell_10s)
            elif name == "trade_sign":
                out[name] = self.trade_sign
        return out


class Momentum(Extractor):
    """Multi-horizon returns and EWMA crossovers of the reference price, in basis points."""

    RETURN_HORIZONS_S = (1.0, 5.0, 30.0)
    EWMA_TAUS_S = (1.0, 5.0, 30.0)  # inlined in update()
    FEATURES = (
        "ret_1s",
        "ret_5s",
        "ret_30s",
        "ewma_1s_5s",
        "ewma_5s_30s",
        "dev_ewma_5s",
    )

    def __init__(self) -> None:
        self.ref = 0.0
        self.last_ts = 0
        self.ema = [0.0, 0.0, 0.0]
        self.history: list[deque[tuple[int, float]]] = [deque() for _ in self.RETURN_HORIZONS_S]
        self._horizons_ns = [int(h * _NS) for h in self.RETURN_HORIZONS_S]

    def update(self, tick: Tick, ref: float) -> None:
        if ref <= 0.0:
            return
        ts = tick.ts
        ema = self.ema
        if self.ref == 0.0:
            ema[0] = ema[1] = ema[2] = ref
        else:
            dt = ts - self.last_ts
            if dt > 0:
                x = -dt / _NS  # hot path: inline decays for the three fixed taus
                ema[0] += (1.0 - math.exp(x)) * (ref - ema[0])
                ema[1] += (1.0 - math.exp(x / 5.0)) * (ref - ema[1])
                ema[2] += (1.0 - math.exp(x / 30.0)) * (ref - ema[2])
        self.last_ts = ts
        if ref != self.ref:
            for h_ns, hist in zip(self._horizons_ns, self.history, strict=True):
                hist.append((ts, ref))
                cutoff = ts - h_ns
                while len(hist) > 1 and hist[1][0] <= cutoff:
                    hist.popleft()
        self.ref = ref

    def _ret(self, i: int) -> float:
        # the return over the horizon back from now (the last tick), not from the last price
        # change: a trade after a quiet spell must not read an old move
        hist = self.history[i]
        cutoff = self.last_ts - self._horizons_ns[i]
        while len(hist) > 1 and hist[1][0] <= cutoff:
            hist.popleft()
        return (self.ref / hist[0][1] - 1.0) * 1e4 if hist else 0.0

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        ref = self.ref
        if ref <= 0.0:
            return dict.fromkeys(names, 0.0)
        e1, e5, e30 = self.ema
        out: dict[str, float] = {}
        for name in names:
            if name == "ret_1s":
                out[name] = self._ret(0)
            elif name == "ret_5s":
                out[name] = self._ret(1)
            elif name == "ret_30s":
                out[name] = self._ret(2)
            elif name == "ewma_1s_5s":
                out[name] = (e1 - e5) / ref * 1e4
            elif name == "ewma_5s_30s":
                out[name] = (e5 - e30) / ref * 1e4
            elif name == "dev_ewma_5s":
                out[name] = (ref - e5) / ref * 1e4
        return out


class Volatility(Extractor):
    """Realised volatility, trade intensity and volume surprise (z-score of log size)."""

    FEATURES = (
        "rv_10s",
        "rv_60s",
        "rv_ratio",
        "intensity_10s",
        "intensity_ratio",
        "volume_z",
        "signed_volume_z",
    )

    def __init__(self) -> None:
        self.ref = 0.0
        self.last_price_ts = 0
        self.var_10s = 0.0
        self.var_60s = 0.0
        self.last_trade_ts = 0
        self.n_10s = 0.0
        self.n_60s = 0.0
        self.vol_mean = 0.0
        self.vol_var = 0.0
        self.vol_n = 0
        self.volume_z = 0.0
        self.sign = 0.0
        self.now = 0

    def update(self, tick: Tick, ref: float) -> None:
        ts = tick.ts
        self.now = ts
        if ref > 0.0 and ref != self.ref:
            if self.ref > 0.0:
                r = math.log(ref / self.ref) * 1e4
                dt = ts - self.last_price_ts
                self.var_10s = self.var_10s * _decay(dt, 10.0) + r * r
                self.var_60s = self.var_60s * _decay(dt, 60.0) + r * r
                self.last_price_ts = ts
            else:
                self.last_price_ts = ts
            self.ref = ref
        if isinstance(tick, Trade):
            dt = ts - self.last_trade_ts
            self.last_trade_ts = ts
            self.n_10s = self.n_10s * _decay(dt, 10.0) + 1.0
            self.n_60s = self.n_60s * _decay(dt, 60.0) + 1.0
            x = math.log(tick.size)
            if self.vol_n > 1 and self.vol_var > 0.0:
                self.volume_z = (x - self.vol_mean) / math.sqrt(self.vol_var)
            else:
                self.volume_z = 0.0
            alpha = 1.0 - _decay(dt, 60.0) if self.vol_n else 1.0
            alpha = max(alpha, 0.01)
            diff = x - self.vol_mean
            self.vol_mean += alpha * diff
            self.vol_var = (1.0 - alpha) * (self.vol_var + alpha * diff * diff)
            self.vol_n += 1
            self.sign = 1.0 if tick.side == "buy" else -1.0 if tick.side == "sell" else 0.0

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        # decay the accumulators to the current tick's time: they only move on events
        since_price = self.now - self.last_price_ts
        since_trade = self.now - self.last_trade_ts
        rv10 = math.sqrt(self.var_10s * _decay(since_price, 10.0) / 10.0)
        rv60 = math.sqrt(self.var_60s * _decay(since_price, 60.0) / 60.0)
        n10 = self.n_10s * _decay(since_trade, 10.0)
        n60 = self.n_60s * _decay(since_trade, 60.0)
        out: dict[str, float] = {}
        for name in names:
            if name == "rv_10s":
                out[name] = rv10
            elif name == "rv_60s":
                out[name] = rv60
            elif name == "rv_ratio":
                out[name] = rv10 / rv60 if rv60 > 0.0 else 1.0
            elif name == "intensity_10s":
                out[name] = n10 / 10.0
            elif name == "intensity_ratio":
                out[name] = (n10 / 10.0) / (n60 / 60.0) if n60 > 0.0 else 1.0
            elif name == "volume_z":
                out[name] = self.volume_z
            elif name == "signed_volume_z":
                out[name] = self.sign * self.volume_z
        return out


_RUN_CAP = 50
_IMBALANCE_BUCKETS = 5
_STATES = 2 * _IMBALANCE_BUCKETS  # imbalance bucket x (spread one tick | wider)


class Flow(Extractor):
    """Signed trade flow (the exchange's side, else Lee–Ready, else the tick rule), Roll's
    spread, order-flow imbalance and Stoikov's microprice adjustment.

    Trades (every sign from one :class:`TradeSigner`; ``signing`` counts the rules used):

    - ``signed_size_{2,10}s``: Σ e^(−Δt/τ)·sᵢ·sizeᵢ / Σ e^(−Δt/τ)·sizeᵢ, in [−1, 1];
    - ``signed_count_{2,10}s``: Σ e^(−Δt/τ)·sᵢ / Σ e^(−Δt/τ), in [−1, 1] (both sums of a ratio
      decay alike, so neither needs decaying to the current time);
    - ``run_length``: +k after k buys in a row, −k after k sells, capped at ±50 (an unsigned
      trade leaves it as it is);
    - ``tick_sign``: the sign of the last non-zero trade price change (0 before one);
    - ``roll_spread_bps``: Roll's spread (:class:`RollSpread`) in bps of the reference price.

    Quotes (exactly 0.0 until a quote is seen, so trades-only data gives them no noise):

    - ``ofi_{1,5}s``: Cont, Kukanov & Stoikov's eₙ = 1{Pᵇₙ ≥ Pᵇₙ₋₁}qᵇₙ − 1{Pᵇₙ ≤ Pᵇₙ₋₁}qᵇₙ₋₁
      − 1{Pᵃₙ ≤ Pᵃₙ₋₁}qᵃₙ + 1{Pᵃₙ ≥ Pᵃₙ₋₁}qᵃₙ₋₁ per quote after the first, summed with decay
      e^(−Δt/τ) up to the current tick, over the decayed mean depth (qᵇ + qᵃ) of the quotes in
      the same window: Σ e·w / (Σ depth·w / Σ w); scale-free (units of mean depth);
    - ``microprice_bps``: Stoikov's (2018) first-order adjustment G¹(I, S) = E[next mid change
      | state], in bps of the mid, for the current state: imbalance I = qᵇ/(qᵇ + qᵃ) in 5 equal
      buckets × spread (≤ 1.5 ticks, the tick being the smallest positive spread seen, or
      wider). Every quote's state is counted; when the mid changes, each state counted since the
      previous change is credited with that change (in bps of the old mid), and, as in Stoikov's
      symmetrisation, its mirror state (bucket 4 − b) with the opposite change, so the table is
      antisymmetric (the middle bucket is 0) and has no drift. The estimate is the plain mean of
      the credited changes (0.0 for a state never credited).
    """

    FEATURES = (
        "signed_size_2s",
        "signed_size_10s",
        "signed_count_2s",
        "signed_count_10s",
        "run_length",
        "tick_sign",
        "roll_spread_bps",
        "ofi_1s",
        "ofi_5s",
        "microprice_bps",
    )

    def __init__(self) -> None:
        self.signer = TradeSigner()
        self.roll = RollSpread()
        self.ref = 0.0
        self.now = 0
        # trades
        self.last_trade_ts = 0
        self.signed_size_2s = 0.0
        self.signed_size_10s = 0.0
        self.size_2s = 0.0
        self.size_10s = 0.0
        self.signed_count_2s = 0.0
        self.signed_count_10s = 0.0
        self.count_2s = 0.0
        self.count_10s = 0.0
        self.run = 0
        # quotes
        self.bid = 0.0
        self.ask = 0.0
        self.bid_size = 0.0
        self.ask_size = 0.0
        self.last_quote_ts = 0
        self.ofi_1s = 0.0
        self.ofi_5s = 0.0
        self.depth_1s = 0.0
        self.depth_5s = 0.0
        self.quotes_1s = 0.0
        self.quotes_5s = 0.0
        # microprice: the state of the current quote, states seen since the last mid change,
        # and the credited mid changes per state
        self.tick_size = math.inf
        self.state = -1
        self.seen = [0] * _STATES
        self.move_sum = [0.0] * _STATES
        self.move_n = [0] * _STATES

    @property
    def signing(self) -> dict[str, int]:
        """Trades signed per rule (``models.trade_sign.RULES``)."""
        return self.signer.counts

    def update(self, tick: Tick, ref: float) -> None:
        ts = tick.ts
        self.now = ts
        self.ref = ref
        if isinstance(tick, Quote):
            self._quote(tick)
            return
        dt = ts - self.last_trade_ts
        self.last_trade_ts = ts
        d2, d10 = _decay(dt, 2.0), _decay(dt, 10.0)
        sign = self.signer.sign(tick, self.bid, self.ask)[0]
        size = tick.size
        self.signed_size_2s = self.signed_size_2s * d2 + sign * size
        self.signed_size_10s = self.signed_size_10s * d10 + sign * size
        self.size_2s = self.size_2s * d2 + size
        self.size_10s = self.size_10s * d10 + size
        self.signed_count_2s = self.signed_count_2s * d2 + sign
        self.signed_count_10s = self.signed_count_10s * d10 + sign
        self.count_2s = self.count_2s * d2 + 1.0
        self.count_10s = self.count_10s * d10 + 1.0
        run = self.run
        if sign > 0.0:
            self.run = run + 1 if 0 < run < _RUN_CAP else _RUN_CAP if run > 0 else 1
        elif sign < 0.0:
            self.run = run - 1 if -_RUN_CAP < run < 0 else -_RUN_CAP if run < 0 else -1
        self.roll.update(tick.price)

    def _quote(self, q: Quote) -> None:
        bid, ask, qb, qa = q.bid, q.ask, q.bid_size, q.ask_size
        pb, pa = self.bid, self.ask
        dt = q.ts - self.last_quote_ts
        self.last_quote_ts = q.ts
        d1, d5 = _decay(dt, 1.0), _decay(dt, 5.0)
        depth = qb + qa
        e = 0.0
        if pb > 0.0 and pa > 0.0:
            if bid >= pb:
                e += qb
            if bid <= pb:
                e -= self.bid_size
            if ask <= pa:
                e -= qa
            if ask >= pa:
                e += self.ask_size
            old_mid = (pb + pa) * 0.5
            mid = (bid + ask) * 0.5
            if mid != old_mid and old_mid > 0.0:
                self._credit((mid / old_mid - 1.0) * 1e4)
        self.ofi_1s = self.ofi_1s * d1 + e
        self.ofi_5s = self.ofi_5s * d5 + e
        self.depth_1s = self.depth_1s * d1 + depth
        self.depth_5s = self.depth_5s * d5 + depth
        self.quotes_1s = self.quotes_1s * d1 + 1.0
        self.quotes_5s = self.quotes_5s * d5 + 1.0
        self.bid, self.ask, self.bid_size, self.ask_size = bid, ask, qb, qa
        spread = ask - bid
        if 0.0 < spread < self.tick_size:
            self.tick_size = spread
        wide = _IMBALANCE_BUCKETS if spread > 1.5 * self.tick_size else 0
        b = int(qb / depth * _IMBALANCE_BUCKETS) if depth > 0.0 else _IMBALANCE_BUCKETS // 2
        state = wide + (b if b < _IMBALANCE_BUCKETS else _IMBALANCE_BUCKETS - 1)
        self.state = state
        self.seen[state] += 1

    def _credit(self, move_bps: float) -> None:
        """Credit the mid change to every state seen since the last one, and its mirror."""
        seen, total, n = self.seen, self.move_sum, self.move_n
        top = _IMBALANCE_BUCKETS - 1
        for k in range(_STATES):
            c = seen[k]
            if c:
                seen[k] = 0
                wide, b = divmod(k, _IMBALANCE_BUCKETS)
                mirror = wide * _IMBALANCE_BUCKETS + top - b
                total[k] += c * move_bps
                n[k] += c
                total[mirror] -= c * move_bps
                n[mirror] += c

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in names:
            if name == "signed_size_2s":
                out[name] = self.signed_size_2s / self.size_2s if self.size_2s > 0.0 else 0.0
            elif name == "signed_size_10s":
                out[name] = self.signed_size_10s / self.size_10s if self.size_10s > 0.0 else 0.0
            elif name == "signed_count_2s":
                c = self.count_2s
                out[name] = self.signed_count_2s / c if c > 0.0 else 0.0
            elif name == "signed_count_10s":
                c = self.count_10s
                out[name] = self.signed_count_10s / c if c > 0.0 else 0.0
            elif name == "run_length":
                out[name] = float(self.run)
            elif name == "tick_sign":
                out[name] = self.signer.tick
            elif name == "roll_spread_bps":
                out[name] = self.roll.spread_bps(self.ref)
            elif name == "ofi_1s":
                out[name] = self._ofi(self.ofi_1s, self.depth_1s, self.quotes_1s, 1.0)
            elif name == "ofi_5s":
                out[name] = self._ofi(self.ofi_5s, self.depth_5s, self.quotes_5s, 5.0)
            elif name == "microprice_bps":
                k = self.state
                n = self.move_n[k] if k >= 0 else 0
                out[name] = self.move_sum[k] / n if n else 0.0
        return out

    def _ofi(self, ofi: float, depth: float, quotes: float, tau_s: float) -> float:
        # the decayed sum up to now, over the mean depth (a ratio of sums decaying alike)
        if depth <= 0.0:
            return 0.0
        return ofi * _decay(self.now - self.last_quote_ts, tau_s) * quotes / depth


class TickSign(Extractor):
    """Only the sign of the last non-zero trade price change (0.0 before one): the whole input
    of the count model's default stage, without paying for :class:`Flow`'s updates."""

    FEATURES = ("tick_sign",)

    def __init__(self) -> None:
        self.rule = TradeSigner()  # only its tick rule (:meth:`TradeSigner.observe`) is used

    def update(self, tick: Tick, ref: float) -> None:
        if isinstance(tick, Trade):
            self.rule.observe(tick.price)

    def features(self, names: tuple[str, ...]) -> dict[str, float]:
        return {"tick_sign": self.rule.tick}


EXTRACTORS: dict[str, type[Extractor]] = {
    "flow": Flow,
    "tick_sign": TickSign,
    "microstructure": Microstructure,
    "momentum": Momentum,
    "volatility": Volatility,
}
