"""Drift alarms on one stage's skill over a coin, for one symbol.

A stage's skill on an outcome is ln 2 − log-loss (positive: better than a coin). Outcomes that
resolve within one horizon share most of their price path, so the detector never sees them one
by one: it sees one value per non-overlapping horizon block of prediction time, the block's
mean skill. The first ``warmup_blocks`` blocks set a centre μ₀ and a scale σ; after that each
block enters as z = (mean − μ₀) / σ, clipped to ±3 (one wild block is not a drift), into a
River detector; a detection is an alarm when it is also material: the last ``recover_blocks``
blocks' mean skill lies at least ``min_drop`` nats below μ₀. σ keeps following the blocks'
noise: skill is far noisier in a busy market than in a quiet one, and a scale frozen in a quiet
warm-up would call every busy spell a drift. It follows half the squared difference of
consecutive blocks (an exponential average over about ``SCALE_SPAN`` blocks, each step capped
at 9 σ²), which a change of level moves once, where the spread around μ₀ would grow with it
and hide the very drop it should show.

- ``page_hinkley``: River's Page–Hinkley test for a decrease, with allowance k (in s.d.) and the
  threshold h for which Siegmund's approximation of the in-control run length is
  1 / ``false_alarm_rate`` blocks;
- ``adwin``: River's ADWIN with δ = ``false_alarm_rate`` (its bound on a false cut), on
  z mapped into [0, 1] (ADWIN's bound assumes values in [0, 1]); only a cut that lowers the
  mean is an alarm.

The monitor only observes; the stage applies the configured action (see :mod:`agents.stage`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from config.settings import DriftConfig
from models.ensemble import COIN_LOSS, log_loss

Z_CLIP = 3.0
SCALE_SPAN = 60  # blocks
_SCALE_ALPHA = 2.0 / (SCALE_SPAN + 1)
_SIEGMUND = 1.166  # the overshoot correction of Siegmund's approximation


def page_hinkley_threshold(false_alarm_rate: float, allowance: float) -> float:
    """h such that a one-sided CUSUM of N(0, 1) increments with reference ``allowance`` runs
    1 / ``false_alarm_rate`` steps on average before a false alarm (Siegmund 1985):
    ARL₀ ≈ (e^{2kb} − 2kb − 1) / (2k²), b = h + 1.166.

    >>> round(page_hinkley_threshold(1 / 930, 0.5), 1)  # the textbook h = 5 at k = 0.5
    5.0
    """
    k = allowance
    target = 1.0 / false_alarm_rate

    def arl(b: float) -> float:
        return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)

    lo, hi = 0.0, 1.0
    while arl(hi) < target:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if arl(mid) < target:
            lo = mid
        else:
            hi = mid
    return max(hi - _SIEGMUND, 0.0)


def build_detector(cfg: DriftConfig) -> Any:
    from river import drift

    if cfg.detector == "adwin":
        return drift.ADWIN(delta=cfg.false_alarm_rate)  # type: ignore[no-untyped-call]
    h = page_hinkley_threshold(cfg.false_alarm_rate, cfg.allowance)
    return drift.PageHinkley(
        min_instances=1, delta=cfg.allowance, threshold=h, alpha=1.0, mode="down"
    )


@dataclass(slots=True)
class DriftMonitor:
    """Block skill, its warm-up scale, the detector and the mute state of one stage × symbol."""

    cfg: DriftConfig
    horizon_ns: int
    detector: Any = None
    block: int = -1  # index of the open block (prediction ts // horizon)
    block_sum: float = 0.0
    block_n: int = 0
    blocks: int = 0  # blocks closed since the start or the last reset
    warm_mean: float = 0.0  # Welford over the warm-up blocks
    warm_m2: float = 0.0
    scale: float = 0.0  # σ once warm (0: still warming up, or no variation to judge)
    last: float = 0.0  # the previous block's mean skill
    recent: deque[float] = field(default_factory=deque)  # the last recover_blocks block means
    muted: bool = False
    alarms: int = 0
    dismissed: int = 0  # detections too small to matter (below min_drop)
    since: int = 0  # outcomes predicted before this event time are not scored (a reset)

    def __post_init__(self) -> None:
        if self.detector is None:
            self.detector = build_detector(self.cfg)

    def add(self, ts: int, p_up: float, up: bool) -> str | None:
        """Score one outcome predicted at ``ts``; "alarm" when a closing block shows a drop,
        "recovered" when a muted stage's recent blocks beat a coin again, else None."""
        if ts < self.since:
            return None
        b = ts // self.horizon_ns
        event = None
        if b != self.block:
            if self.block_n:
                event = self.close_block(self.block_sum / self.block_n)
            self.block = b
            self.block_sum = 0.0
            self.block_n = 0
        self.block_sum += COIN_LOSS - log_loss(p_up, up)
        self.block_n += 1
        return event

    def close_block(self, skill: float) -> str | None:
        """Judge one closed block by its mean skill (:meth:`add` calls it as blocks close)."""
        cfg = self.cfg
        self.blocks += 1
        recent = self.recent
        recent.append(skill)
        if len(recent) > cfg.recover_blocks:
            recent.popleft()
        if self.blocks <= cfg.warmup_blocks:
            delta = skill - self.warm_mean
            self.warm_mean += delta / self.blocks
            self.warm_m2 += delta * (skill - self.warm_mean)
            if self.blocks == cfg.warmup_blocks:
                self.scale = math.sqrt(self.warm_m2 / (self.blocks - 1))
            self.last = skill
            return None
        scale = self.scale
        if scale <= 1e-12:
            return None
        z = min(max((skill - self.warm_mean) / scale, -Z_CLIP), Z_CLIP)
        var = scale * scale
        step = skill - self.last
        self.scale = math.sqrt(
            (1.0 - _SCALE_ALPHA) * var
            + _SCALE_ALPHA * min(step * step / 2.0, Z_CLIP * Z_CLIP * var)
        )
        self.last = skill
        det = self.detector
        if cfg.detector == "adwin":
            u = 0.5 + z / (2 * Z_CLIP)
            before = det.estimation
            det.update(u)
            alarm = det.drift_detected and det.estimation < before
        else:
            det.update(z)
            alarm = det.drift_detected
        if alarm:
            # material too: the recent blocks' mean is min_drop below the centre, so a
            # near-coin stage whose skill wobbles by a hair (tiny σ) does not alarm
            if self.warm_mean - sum(recent) / len(recent) < cfg.min_drop:
                self.dismissed += 1
                return None
            self.alarms += 1
            return "alarm"
        if (
            self.muted
            and len(recent) == cfg.recover_blocks
            and sum(recent) / cfg.recover_blocks > 0.0
        ):
            return "recovered"
        return None

    def mute(self) -> None:
        """Abstain from now on; only blocks after this one count towards recovery."""
        self.muted = True
        self.recent.clear()

    def reset(self, since: int) -> None:
        """Start over (a reset model): a new warm-up; outcomes predicted before ``since``
        belong to the old model and are not scored."""
        self.detector = build_detector(self.cfg)
        self.block = -1
        self.block_sum = 0.0
        self.block_n = 0
        self.blocks = 0
        self.warm_mean = 0.0
        self.warm_m2 = 0.0
        self.scale = 0.0
        self.last = 0.0
        self.recent.clear()
        self.muted = False
        self.since = since
