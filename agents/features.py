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
    """Spread, top-of-book imbalance, microprice vs mid, aggressor-flow imbalance."""

    FEATURES = (
        "spread_bps",
        "imbalance",
        "microprice_bps",
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

    def update(self, tick: Tick, ref: float) -> None:
        if isinstance(tick, Quote):
            self.bid, self.ask = tick.bid, tick.ask
            self.bid_size, self.ask_size = tick.bid_size, tick.ask_size
            return
        dt = tick.ts - self.last_ts
        self.last_ts = tick.ts
        d2, d10 = _decay(dt, 2.0), _decay(dt, 10.0)
        buy = tick.size if tick.side == "buy" else 0.0
        sell = tick.size if tick.side == "sell" else 0.0
        self.buy_2s = self.buy_2s * d2 + buy
        self.sell_2s = self.sell_2s * d2 + sell
        self.buy_10s = self.buy_10s * d10 + buy
        self.sell_10s = self.sell_10s * d10 + sell
        self.trade_sign = 1.0 if tick.side == "buy" else -1.0 if tick.side == "sell" else 0.0

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
            elif name == "microprice_bps":
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


EXTRACTORS: dict[str, type[Extractor]] = {
    "microstructure": Microstructure,
    "momentum": Momentum,
    "volatility": Volatility,
}
