"""quorum.report_html: one self-contained, escaped, deterministic page; empty and odd inputs."""

from __future__ import annotations

import bisect
import itertools
import math
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agents.voting import Scored
from config.settings import load_config
from models.records import Action, Tick, Trade
from quorum.backtest import _Calibration, run_backtest
from quorum.report_html import MAX_POINTS, decimate, render_html
from quorum.stats import ece, reliability
from streams.readers import read_ticks
from tests.conftest import SAMPLE_FILES

STAGES = ("microstructure", "momentum", "volatility")  # of the hand-made reports
REAL_STAGES = tuple(s.name for s in load_config().stages)  # of the real runs
T0 = 1_723_075_200 * 10**9  # 2024-08-08 00:00:00 UTC in ns
EVIL = "<script>alert(1)</script>"
Json = dict[str, Any]


def _score(acc: float, ll: float) -> dict[str, Any]:
    return {"n_scored": 300, "accuracy": acc, "log_loss": ll, "brier": 0.245}


def _symbol(n: int, base: float, phase: float) -> dict[str, Any]:
    price = [[T0 + i * 10**9, base + 5 * math.sin(i / 40 + phase) + i * 0.01] for i in range(n)]
    weights = {
        s: [[T0 + i * 10**9, (1 + math.sin(i / 60 + k + phase)) / 3] for i in range(0, n, 5)]
        for k, s in enumerate(STAGES)
    }
    return {
        "price": price,
        "buy": [p for i, p in enumerate(price) if i % 37 == 0],
        "sell": [p for i, p in enumerate(price) if i % 41 == 3],
        "weights": weights,
    }


def _inputs(symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> tuple[Json, Json]:
    report: dict[str, Any] = {
        "config_hash": "ab12cd34ef56",
        "horizon_s": 5.0,
        "inputs": ["data/binance/spot/btcusdt_20240808.gz", "data/binance/spot/ethusdt.gz"],
        "events": 166351,
        "trades": 34419,
        "quotes": 131932,
        "rejected": 0,
        "elapsed_s": 17.2,
        "events_per_s": 9671.0,
        "ensemble": _score(0.5755, 0.6843),
        "stages": {
            s: {**_score(0.55, ll), "model": f"{s}:1a2b3c4d",
                "final_weight": dict.fromkeys(symbols, 0.5)}
            for s, ll in zip(STAGES, (0.689, 0.70, 0.6931), strict=True)
        },
        "signals": {"total": 600, "BUY": 100, "SELL": 120, "HOLD": 380, "hit_rate": 0.58,
                    "n_hits_scored": 200},
        "per_symbol": {s: {"events": 1000, "signals": 300, "ensemble": _score(0.57, 0.68)}
                       for s in symbols},
    }  # fmt: skip
    charts: dict[str, Any] = {
        "symbols": {s: _symbol(400, 100.0 * (k + 1), k) for k, s in enumerate(symbols)},
        "rolling_accuracy": {
            m: [[T0 + i * 10**9, 0.5 + 0.05 * math.sin(i / 30 + k)] for i in range(50, 400)]
            for k, m in enumerate(("ensemble", *STAGES))
        },
        "rolling_window": 500,
    }
    return report, charts


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.starts: list[str] = []
        self.ends: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)


def _tags(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    p.close()
    return p


def test_realistic_page_is_one_self_contained_document() -> None:
    report, charts = _inputs()
    page = render_html(report, charts)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    tags = _tags(page)
    for tag in ("html", "head", "body", "title", "style", "script"):
        assert tags.starts.count(tag) == 1, tag
    # two charts per symbol (price, weights) and one rolling-accuracy chart
    assert page.count("<svg") == 2 * 2 + 1
    assert tags.starts.count("svg") == tags.ends.count("svg") == 5
    assert "no data" not in page
    for name in ("BTCUSDT", "ETHUSDT", "ensemble", *STAGES):
        assert name in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]*\bsrc", page)
    assert not re.search(r"<link\b|<img\b|@import|url\(", page)
    assert "quorum backtest report" in page and "ab12cd34ef56" in page
    assert "2024-08-08 00:00:00 → 2024-08-08 00:06:39 UTC" in page
    assert "0.6931" in page  # the coin reference row


def test_charts_have_title_legend_ticks_and_markers() -> None:
    report, charts = _inputs(("BTCUSDT",))
    page = render_html(report, charts)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    price, weights, rolling = svgs
    assert "BTCUSDT price with signals" in price
    assert ">BUY</text>" in price and ">SELL</text>" in price  # legend
    assert 'fill="#16a34a"' in price and 'fill="#dc2626"' in price  # green / red triangles
    assert re.search(r">00:0\d:\d\d</text>", price)  # HH:MM:SS ticks
    assert all(f'data-name="{s}"' in weights for s in STAGES)
    assert 'stroke-dasharray="6 4"' in rolling and "coin (50%)" in rolling
    # one colour per stage, the same in the weights and the rolling-accuracy chart
    for s in STAGES:
        colour = re.search(rf'data-name="{s}" fill="none" stroke="(#[0-9a-f]+)"', weights)
        assert colour is not None
        assert f'data-name="{s}" fill="none" stroke="{colour.group(1)}"' in rolling


def test_log_loss_below_coin_is_highlighted() -> None:
    page = render_html(*_inputs())
    assert '<td class="good">0.6843</td>' in page  # ensemble beats ln 2
    assert '<td class="bad">0.7000</td>' in page  # momentum does not


def test_malicious_names_are_escaped() -> None:
    report, charts = _inputs((EVIL, "ETHUSDT"))
    report["config_hash"] = EVIL
    report["inputs"] = [EVIL]
    charts["rolling_accuracy"][EVIL] = charts["rolling_accuracy"]["ensemble"]
    charts["symbols"][EVIL]["weights"][EVIL] = [[T0, 0.5], [T0 + 10**9, 0.6]]
    page = render_html(report, charts)
    assert EVIL not in page
    assert "alert(1)" in page  # shown, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert _tags(page).starts.count("script") == 1


def test_output_is_deterministic() -> None:
    report, charts = _inputs()
    first = render_html(report, charts)
    assert render_html(report, charts) == first
    again = _inputs()
    assert render_html(*again) == first  # equal inputs built afresh


@pytest.mark.parametrize(
    "charts",
    [
        {"symbols": {}, "rolling_accuracy": {}, "rolling_window": 500},
        {"symbols": {}, "rolling_accuracy": {"ensemble": []}, "rolling_window": 500},
        {},
    ],
)
def test_empty_run_renders_no_data_notes(charts: dict[str, Any]) -> None:
    report = {
        "config_hash": "00",
        "inputs": [],
        "events": 0,
        "trades": 0,
        "quotes": 0,
        "rejected": 0,
        "elapsed_s": 0.0,
        "events_per_s": 0.0,
        "ensemble": {"n_scored": 0, "accuracy": None, "log_loss": None, "brier": None},
        "stages": {},
        "signals": {"total": 0, "BUY": 0, "SELL": 0, "HOLD": 0, "hit_rate": None},
        "per_symbol": {},
    }
    page = render_html(report, charts)
    assert "<svg" not in page
    assert page.count('class="nodata"') == 2  # no symbols; no rolling accuracy
    assert "no data" in page and "no timestamps" in page
    assert render_html({}, {}).count("no data") == 2


def test_symbol_with_empty_series_gets_notes_per_chart() -> None:
    report, charts = _inputs(("BTCUSDT",))
    charts["symbols"]["BTCUSDT"] = {"price": [], "buy": [], "sell": [], "weights": {}}
    charts["rolling_accuracy"] = {"ensemble": []}
    page = render_html(report, charts)
    assert "<svg" not in page
    assert page.count('class="nodata"') == 3  # price, weights, rolling accuracy


def test_price_without_signals_still_draws() -> None:
    report, charts = _inputs(("BTCUSDT",))
    charts["symbols"]["BTCUSDT"]["buy"] = []
    charts["symbols"]["BTCUSDT"]["sell"] = []
    page = render_html(report, charts)
    assert page.count("<svg") == 3 and ">BUY</text>" in page


def test_non_finite_and_malformed_points_are_skipped() -> None:
    report, charts = _inputs(("BTCUSDT",))
    sym = charts["symbols"]["BTCUSDT"]
    sym["price"][5][1] = math.nan
    sym["price"][6][1] = math.inf
    sym["price"][7] = [None, 1.0]
    sym["price"].insert(8, "junk")
    sym["weights"]["momentum"] = [[T0, -math.inf], [T0 + 10**9, math.nan]]
    report["ensemble"]["log_loss"] = math.nan
    page = render_html(report, charts)
    assert not re.search(r"\b(nan|inf)\b", page, flags=re.I)
    assert page.count("<svg") == 3


def test_long_series_are_decimated() -> None:
    report, charts = _inputs(("BTCUSDT",))
    n = 3 * MAX_POINTS + 7
    sym = charts["symbols"]["BTCUSDT"]
    sym["price"] = [[T0 + i * 10**6, 100.0 + (i % 2) * 10] for i in range(n)]
    page = render_html(report, charts)
    points = re.search(r'data-name="price"[^>]*points="([^"]*)"', page)
    assert points is not None
    assert len(points.group(1).split()) <= MAX_POINTS


def test_decimate_keeps_every_kth_and_the_last() -> None:
    pts = [(float(i), 0.0) for i in range(10_001)]
    out = decimate(pts, 100)
    assert len(out) <= 100 and out[0] == pts[0] and out[-1] == pts[-1]
    steps = {b[0] - a[0] for a, b in itertools.pairwise(out[:-1])}
    assert len(steps) == 1
    assert decimate(pts[:50], 100) == pts[:50]
    odd = decimate(pts[:1001], 100)
    assert len(odd) <= 100 and odd[-1] == pts[1000]


# --------------------------------------------------------------------------- content of a real run
# A real backtest of the fixture heads, with the BUY/SELL threshold lowered to 0.51 so that the
# run has both BUY and SELL signals (at the default 0.55 the heads give only HOLD). The page it
# writes is parsed back: SVG with xml.etree, tables with html.parser, coordinates inverted with
# the scale the page itself declares (checked against its axis labels and one hand computation).

LOW_THRESHOLD = 0.51
PRICE_H, WEIGHTS_H = 340, 240  # the heights render_html gives the two per-symbol charts
PX0, PX1, PY1 = 72.0, 1000.0 - 24.0, 58.0  # plot area: left, right, top (SVG user units)
HALF_PX = 0.051  # coordinates are written with 0.1 px: half a step, plus float slack
_UP = re.compile(r"M(-?\d+\.\d) (-?\d+\.\d)l4 7\.5h-8z")  # tip on top: points up (BUY)
_DOWN = re.compile(r"M(-?\d+\.\d) (-?\d+\.\d)l4-7\.5h-8z")  # tip at the bottom (SELL)


@dataclass(frozen=True)
class _Sig:
    symbol: str
    t: float  # seconds
    action: str
    price: float  # the price of the trade that triggered it, read from the input
    weights: dict[str, float]


@dataclass(frozen=True)
class _Run:
    report: Json
    page: str
    signals: list[_Sig]


@dataclass(frozen=True)
class _Svg:
    el: ET.Element
    x0: float
    x1: float
    px0: float
    px1: float
    y0: float
    y1: float
    py0: float
    py1: float

    def t(self, x: float) -> float:
        """SVG x back to seconds, with the scale the page declares."""
        return self.x0 + (x - self.px0) / (self.px1 - self.px0) * (self.x1 - self.x0)

    def v(self, y: float) -> float:
        """SVG y back to a value (the y axis points down: bottom = py0 = y0)."""
        return self.y0 + (self.py0 - y) / (self.py0 - self.py1) * (self.y1 - self.y0)

    @property
    def tol_t(self) -> float:
        return HALF_PX * (self.x1 - self.x0) / (self.px1 - self.px0)

    @property
    def tol_v(self) -> float:
        return HALF_PX * (self.y1 - self.y0) / (self.py0 - self.py1)

    def named(self, tag: str, name: str) -> list[ET.Element]:
        return [e for e in self.el.iter(tag) if e.get("data-name") == name]

    def texts(self, anchor: str) -> list[tuple[float, float, str]]:
        """(x, y, text) of the axis labels in the group with this text-anchor."""
        groups = [
            g for g in self.el.iter("g") if g.get("text-anchor") == anchor and g.get("font-size")
        ]
        assert len(groups) == 1, anchor
        return [(float(t.get("x", "")), float(t.get("y", "")), t.text or "") for t in groups[0]]


def _svgs(page: str) -> dict[str, _Svg]:
    out: dict[str, _Svg] = {}
    for raw in re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S):  # the time charts
        el = ET.fromstring(raw)
        a = {k: float(el.get(k, "nan")) for k in ("data-x0", "data-x1", "data-y0", "data-y1")}
        p = {k: float(el.get(k, "nan")) for k in ("data-px0", "data-px1", "data-py0", "data-py1")}
        out[el.get("aria-label", "")] = _Svg(
            el, a["data-x0"], a["data-x1"], p["data-px0"], p["data-px1"],
            a["data-y0"], a["data-y1"], p["data-py0"], p["data-py1"],
        )  # fmt: skip
    return out


def _points(el: ET.Element) -> list[tuple[float, float]]:
    nums = [float(n) for n in re.split(r"[ ,]", el.get("points", "").strip())]
    return list(zip(nums[::2], nums[1::2], strict=True))


def _markers(svg: _Svg, name: str) -> list[tuple[float, float]]:
    """The (x, y) each triangle of series ``name`` marks, asserting it is drawn as its kind."""
    (path,) = svg.named("path", name)
    d = path.get("d", "")
    up, down = _UP.findall(d), _DOWN.findall(d)
    # a BUY drawn as a down triangle (or a SELL as an up one) is a swapped legend
    if name == "BUY":
        assert up and not down and path.get("fill") == "#16a34a", "BUY: green, pointing up"
        return [(float(x), float(y) - 1.0) for x, y in up]  # the tip is 1 px below the point
    assert down and not up and path.get("fill") == "#dc2626", "SELL: red, pointing down"
    return [(float(x), float(y) + 1.0) for x, y in down]


def _near(want: list[tuple[float, float]], t: float, v: float, tol_t: float, tol_v: float) -> bool:
    """Some (t', v') of ``want`` (sorted by t) within the tolerances of (t, v)."""
    i = bisect.bisect_left(want, (t - tol_t, -math.inf))
    while i < len(want) and want[i][0] <= t + tol_t:
        if abs(want[i][1] - v) <= tol_v:
            return True
        i += 1
    return False


class _Tables(HTMLParser):
    """Every table's rows as cell texts, keyed by the <h2> section it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.section = ""
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.paragraphs: dict[str, list[str]] = {}
        self._h2: list[str] | None = None
        self._cell: list[str] | None = None
        self._p: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._h2 = []
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.tables[self.section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p":
            self._p = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._h2 is not None:
            self.section, self._h2 = "".join(self._h2), None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self.section][-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "p" and self._p is not None:
            self.paragraphs.setdefault(self.section, []).append("".join(self._p))
            self._p = None

    def handle_data(self, data: str) -> None:
        for buf in (self._h2, self._cell, self._p):
            if buf is not None:
                buf.append(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> _Run:
    cfg = load_config(None)
    cfg = cfg.with_overrides(voting={**cfg.voting.model_dump(), "threshold": LOW_THRESHOLD})
    out = tmp_path_factory.mktemp("report")
    result = run_backtest(SAMPLE_FILES, config=cfg, out_dir=out, prefetch=False)
    by_symbol: dict[str, list[Tick]] = {}
    for tick in read_ticks(SAMPLE_FILES):
        by_symbol.setdefault(tick.symbol, []).append(tick)
    sigs: list[_Sig] = []
    for s in result.signals:
        trade = by_symbol[s.symbol][s.seq - 1]  # seq numbers a symbol's ticks from 1
        assert isinstance(trade, Trade) and trade.ts == s.ts
        weights = {sv.name: sv.weight for sv in s.stages}
        sigs.append(_Sig(s.symbol, s.ts / 1e9, s.action.value, trade.price, weights))
    page = (out / "report.html").read_text(encoding="utf-8")
    return _Run(result.report, page, sigs)


def _of(run: _Run, symbol: str, action: str | None = None) -> list[_Sig]:
    return [s for s in run.signals if s.symbol == symbol and action in (None, s.action)]


def test_run_has_buy_and_sell_signals_per_symbol(run: _Run) -> None:
    # guards the fixture: without both actions the marker tests below would prove nothing
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert len(_of(run, sym, "BUY")) > 50 and len(_of(run, sym, "SELL")) > 50
    assert len(_svgs(run.page)) == 5


def test_axis_labels_agree_with_the_declared_scale(run: _Run) -> None:
    # Catches: a flipped y axis (labels must grow upwards), time running right to left, and a
    # page whose data-* scale (what the other tests invert with) disagrees with its axis labels.
    for sym in ("BTCUSDT", "ETHUSDT"):
        svg = _svgs(run.page)[f"{sym} price with signals"]
        ylab = [(y - 4.0, float(s.replace(",", ""))) for _, y, s in svg.texts("end") if s != "UTC"]
        assert len(ylab) >= 3
        for y, v in ylab:
            assert abs(svg.v(y) - v) <= 2 * svg.tol_v, (y, v)
        # higher prices higher up: sorted by value, the labels' y strictly decreases
        ys = [y for y, _ in sorted(ylab, key=lambda p: p[1])]
        assert all(a > b for a, b in itertools.pairwise(ys))
        day = datetime.fromtimestamp(svg.x0, tz=UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        xlab = [(x, s) for x, _, s in svg.texts("middle")]
        assert len(xlab) >= 3
        for x, s in xlab:
            h, m, sec = map(int, s.split(":"))
            t = day.timestamp() + 3600 * h + 60 * m + sec
            assert abs(svg.t(x) - t) <= 2 * svg.tol_t, (x, s)
        xs = [x for x, _ in xlab]  # labels are emitted in time order: x must grow
        assert all(a < b for a, b in itertools.pairwise(xs))


def test_one_marker_by_hand(run: _Run) -> None:
    # The scale by hand, from the plot-area constants and the data alone (not the page's data-*):
    # x spans the symbol's first..last signal, y its min..max signal price padded by 6 %.
    # Catches: an off-by-something in sx/sy that the data-* attributes would repeat.
    sigs = _of(run, "BTCUSDT")
    t0, t1 = sigs[0].t, sigs[-1].t
    lo, hi = min(s.price for s in sigs), max(s.price for s in sigs)
    y0, y1 = lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo)
    py0 = PRICE_H - 30.0  # bottom of the plot: 30 units for the time labels (one day)
    buy = _of(run, "BTCUSDT", "BUY")[0]
    x = PX0 + (buy.t - t0) / (t1 - t0) * (PX1 - PX0)
    y = py0 - (buy.price - y0) / (y1 - y0) * (py0 - PY1)
    svg = _svgs(run.page)["BTCUSDT price with signals"]
    (path,) = svg.named("path", "BUY")
    assert path.get("d", "").startswith(f"M{x:.1f} {y + 1.0:.1f}l4 7.5h-8z")
    assert (svg.x0, svg.x1, svg.px0, svg.px1, svg.py0, svg.py1) == (t0, t1, PX0, PX1, py0, PY1)
    assert svg.y0 == pytest.approx(y0) and svg.y1 == pytest.approx(y1)


@pytest.mark.parametrize("action", ["BUY", "SELL"])
def test_markers_sit_at_their_signals_times_and_prices(run: _Run, action: str) -> None:
    # Catches: BUY markers drawn at the SELL points (or the reverse), markers at a wrong price
    # or time, a flipped y axis (inverted prices miss), a dropped or duplicated marker.
    other = "SELL" if action == "BUY" else "BUY"
    for sym in ("BTCUSDT", "ETHUSDT"):
        svg = _svgs(run.page)[f"{sym} price with signals"]
        got = [(svg.t(x), svg.v(y)) for x, y in _markers(svg, action)]
        want = sorted((s.t, s.price) for s in _of(run, sym, action))
        wrong = sorted((s.t, s.price) for s in _of(run, sym, other))
        assert len(got) == len(want)  # 2,000 markers max per series; far fewer here
        tol = (svg.tol_t, svg.tol_v)
        assert all(_near(want, t, v, *tol) for t, v in got), f"{sym} {action} off its signals"
        got_sorted = sorted(got)
        assert all(_near(got_sorted, t, v, *tol) for t, v in want), f"{sym} {action} missing"
        # and they do not also fit the other action's signals (the swap would)
        assert sum(_near(wrong, t, v, *tol) for t, v in got) < len(got) // 10


def _is_call(
    svg: _Svg,
    calls: list[_Sig],
    mark: tuple[float, float, str],
    *,
    t: float | None = None,
    price: float | None = None,
) -> bool:
    """``mark`` (x, y, action) is a call of that action at time t (by its x) or at this price."""
    return any(
        s.action == mark[2]
        and (t is None or (s.t == t and abs(svg.t(mark[0]) - t) <= svg.tol_t))
        and (price is None or s.price == price)
        for s in calls
    )


def test_higher_prices_are_drawn_higher_and_time_runs_left_to_right(run: _Run) -> None:
    # Without the page's scale: the raw SVG coordinates against the signals' own order.
    # Catches: a flipped y axis, a flipped time axis.
    for sym in ("BTCUSDT", "ETHUSDT"):
        svg = _svgs(run.page)[f"{sym} price with signals"]
        marks = [(x, y, "BUY") for x, y in _markers(svg, "BUY")]
        marks += [(x, y, "SELL") for x, y in _markers(svg, "SELL")]
        calls = [s for s in _of(run, sym) if s.action != "HOLD"]
        top, bottom = max(calls, key=lambda s: s.price), min(calls, key=lambda s: s.price)
        first, last = min(calls, key=lambda s: s.t), max(calls, key=lambda s: s.t)
        assert top.price > bottom.price and last.t > first.t
        # the topmost marker is a highest-priced call, the lowest one a lowest-priced call
        assert _is_call(svg, calls, min(marks, key=lambda m: m[1]), price=top.price)
        assert _is_call(svg, calls, max(marks, key=lambda m: m[1]), price=bottom.price)
        # the leftmost marker is the first call, the rightmost the last
        assert _is_call(svg, calls, min(marks), t=first.t)
        assert _is_call(svg, calls, max(marks), t=last.t)
        (line,) = svg.named("polyline", "price")
        xs = [x for x, _ in _points(line)]
        assert xs[0] == PX0 and xs[-1] == PX1
        assert all(a <= b for a, b in itertools.pairwise(xs))


def test_every_stage_has_its_weight_series(run: _Run) -> None:
    # Catches: a stage's weight series dropped, one stage drawn with another's weights, weights
    # drawn upside down, a stage coloured differently from its row in the score table.
    stages = list(run.report["stages"])
    assert stages == list(REAL_STAGES)
    tables = _Tables()
    tables.feed(run.page)
    for sym in ("BTCUSDT", "ETHUSDT"):
        svg = _svgs(run.page)[f"{sym} ensemble weights over time"]
        assert {e.get("data-name") for e in svg.el.iter("polyline")} == set(stages)
        sigs = _of(run, sym)
        for stage in stages:
            (line,) = svg.named("polyline", stage)
            pts = [(svg.t(x), svg.v(y)) for x, y in _points(line)]
            assert len(pts) > 100
            want = sorted((s.t, s.weights[stage]) for s in sigs)
            tol = (svg.tol_t, svg.tol_v)
            assert all(_near(want, t, v, *tol) for t, v in pts), f"{sym} {stage} weights"
            assert abs(pts[0][0] - sigs[0].t) <= svg.tol_t
            assert abs(pts[-1][0] - sigs[-1].t) <= svg.tol_t
            colour = line.get("stroke")
            assert f'<span class="sw" style="background:{colour}"></span>{stage}</td>' in run.page


def _pct_by_hand(v: float) -> str:
    return f"{100.0 * v:.2f}%"


def test_score_table_and_hit_rate_show_the_reports_numbers(run: _Run) -> None:
    # Catches: a wrong number in the score table (a stage showing another's or the ensemble's
    # scores, a column swapped, a wrong scale or rounding), a wrong hit rate or signal count.
    tables = _Tables()
    tables.feed(run.page)
    (scores,) = tables.tables["Scores"]
    assert scores[0][:6] == ["model", "n scored", "accuracy", "log-loss",
                             "log-loss skill vs coin", "brier"]  # fmt: skip
    rows = {r[0]: r for r in scores[1:]}
    rep = run.report
    for name, sc in [("ensemble", rep["ensemble"]), *rep["stages"].items()]:
        n, acc, ll, brier = sc["n_scored"], sc["accuracy"], sc["log_loss"], sc["brier"]
        assert n > 1000 and 0.4 < acc < 0.7  # real numbers, so a swap shows
        skill = 100.0 * (1.0 - ll / math.log(2.0))
        assert rows[name][1:6] == [
            f"{n:,}",
            _pct_by_hand(acc),
            f"{ll:.4f}",
            f"{skill:+.2f}%",
            f"{brier:.4f}",
        ], name
    assert len({tuple(r[1:6]) for r in scores[1:]}) == len(scores) - 1  # no two rows alike
    sig = rep["signals"]
    counts = {a: sum(s.action == a for s in run.signals) for a in ("BUY", "SELL", "HOLD")}
    assert {a: sig[a] for a in counts} == counts
    (actions,) = tables.tables["Signals"]
    shown = {r[0]: r[1] for r in actions[1:]}
    assert shown == {**{a: f"{c:,}" for a, c in counts.items()}, "total": f"{len(run.signals):,}"}
    hit = f"BUY/SELL hit rate {_pct_by_hand(sig['hit_rate'])} over {sig['n_hits_scored']:,} calls"
    assert any(p.startswith(hit) for p in tables.paragraphs["Signals"]), hit


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no /usr/bin/chromium")
def test_headless_chromium_parses_the_same_page(run: _Run, tmp_path: Path) -> None:
    # A real browser's parser: every chart and every marker path survives as written (an
    # unclosed tag or a stray character in the page would swallow or reorder them).
    page = tmp_path / "report.html"
    page.write_text(run.page, encoding="utf-8")
    out = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    dom = out.stdout
    assert dom.count("<svg") == 5 + 1 + len(REAL_STAGES)  # + the reliability diagrams
    for svg in _svgs(run.page).values():
        for p in svg.el.iter("path"):
            if p.get("data-name") in ("BUY", "SELL"):
                assert p.get("d", "") in dom


# --------------------------------------------------------------------------- reliability diagrams


def _rel_svgs(page: str) -> dict[str, ET.Element]:
    out = {}
    for raw in re.findall(r'<svg class="rel".*?</svg>', page, flags=re.S):
        el = ET.fromstring(raw)
        out[el.get("aria-label", "")] = el
    return out


def _dots(el: ET.Element) -> list[tuple[float, float, float, float, float]]:
    """(cx, cy, data-p, data-y, data-n) of every bin dot."""
    return [
        tuple(float(c.get(k, "nan")) for k in ("cx", "cy", "data-p", "data-y", "data-n"))  # type: ignore[misc]
        for c in el.iter("circle")
    ]


def test_reliability_diagram_by_hand() -> None:
    report, charts = _inputs(("BTCUSDT",))
    p = [0.40, 0.45, 0.48, 0.50, 0.52, 0.55, 0.58, 0.60]
    y = [False, False, True, False, True, True, False, True]
    # 4 equal-mass bins of 2: means p .425 .49 .535 .59, observed 0 .5 1 .5
    bins = [[mp, fy, float(n)] for mp, fy, n in reliability(p, y, 4)]
    assert [b[1] for b in bins] == [0.0, 0.5, 1.0, 0.5]
    charts["reliability"] = {"ensemble": bins, "momentum": bins[:2]}
    charts["reliability_bins"] = 4
    page = render_html(report, charts)
    rel = _rel_svgs(page)
    assert set(rel) == {"ensemble: reliability", "momentum: reliability"}
    assert page.count("<svg") == 3 + 2 and "4 equal-mass bins" in page
    el = rel["ensemble: reliability"]
    # ECE by hand: (|0 - .425| + |.5 - .49| + |1 - .535| + |.5 - .59|) / 4 = 0.2475
    assert float(el.get("data-ece", "")) == pytest.approx(0.2475) == ece(p, y, 4)
    assert "ECE 0.2475, 4 bins" in page
    lo, hi = float(el.get("data-lo", "")), float(el.get("data-hi", ""))
    px0, py0, side = (float(el.get(k, "")) for k in ("data-px0", "data-py0", "data-side"))
    assert lo <= 0.0 and hi >= 1.0  # observed rates 0 and 1: the axes cover them (clipped)
    dots = _dots(el)
    assert [(d[2], d[3], d[4]) for d in dots] == [tuple(b) for b in bins]
    for cx, cy, mp, fy, _ in dots:  # equal scales: x from the prediction, y from the rate
        assert cx == pytest.approx(px0 + (mp - lo) / (hi - lo) * side, abs=0.051)
        assert cy == pytest.approx(py0 - (fy - lo) / (hi - lo) * side, abs=0.051)
    # the diagonal runs corner to corner of the square plot area
    (diag,) = [e for e in el.iter("line") if e.get("class") == "diag"]
    assert float(diag.get("x2", "")) - float(diag.get("x1", "")) == pytest.approx(side)
    assert float(diag.get("y1", "")) - float(diag.get("y2", "")) == pytest.approx(side)
    # the colour is the model's colour elsewhere on the page
    weights = re.search(r'data-name="momentum" fill="none" stroke="(#[0-9a-f]+)"', page)
    assert weights is not None
    (line,) = rel["momentum: reliability"].iter("polyline")
    assert line.get("stroke") == weights.group(1)


def test_reliability_zooms_to_predictions_near_a_half() -> None:
    report, charts = _inputs(("BTCUSDT",))
    charts["reliability"] = {"ensemble": [[0.49, 0.5, 10.0], [0.51, 0.52, 10.0]]}
    el = _rel_svgs(render_html(report, charts))["ensemble: reliability"]
    lo, hi = float(el.get("data-lo", "")), float(el.get("data-hi", ""))
    assert 0.44 < lo < 0.45 and 0.55 < hi < 0.56  # 0.45..0.55 plus 5 % padding


@pytest.mark.parametrize(
    "rel", [{}, {"ensemble": []}, {"ensemble": [[math.nan, 0.5, 3], "junk", [0.5, 2.0, 1]]}]
)
def test_reliability_without_bins_is_a_note(rel: dict[str, Any]) -> None:
    report, charts = _inputs(("BTCUSDT",))
    charts["reliability"] = rel
    page = render_html(report, charts)
    assert '<svg class="rel"' not in page
    assert "no scored outcomes to bin" in page
    assert not re.search(r"\b(nan|inf)\b", page, flags=re.I)


def test_real_run_has_a_reliability_diagram_per_stage_and_the_ensemble(run: _Run) -> None:
    rel = _rel_svgs(run.page)
    assert list(rel) == [f"{n}: reliability" for n in ("ensemble", *REAL_STAGES)]
    for name, el in rel.items():
        model = name.split(":")[0]
        score = run.report["ensemble"] if model == "ensemble" else run.report["stages"][model]
        dots = _dots(el)
        counts = [d[4] for d in dots]
        assert sum(counts) == score["n_scored"]  # every scored outcome is in one bin
        # equal mass, except that tied predictions share a bin (the count table has few values)
        assert 1 <= len(dots) <= 10
        ps = [d[2] for d in dots]
        assert ps == sorted(ps)
        # the ECE shown is the one of the bins drawn
        by_bins = sum(n / sum(counts) * abs(fy - mp) for _, _, mp, fy, n in dots)
        assert float(el.get("data-ece", "")) == pytest.approx(by_bins)


# --------------------------------------------------------------------------- calibration block
# report.json's "calibration": per model (ensemble, stages), overall / per symbol / per UTC hour of
# the prediction's event time, each {n, ece, brier, reliability, resolution, uncertainty,
# within_bin_variance, within_bin_covariance[, bins]}; the page's Calibration tables show it.

_CAL_KEYS = {"n", "ece", "brier", "reliability", "resolution", "uncertainty",
             "within_bin_variance", "within_bin_covariance"}  # fmt: skip


def _scored(ts: int, p: float, up: bool, momentum: float | None) -> Scored:
    return Scored("BTCUSDT", 1, ts, up, Action.HOLD, p, {"momentum": momentum})


def test_outcomes_are_keyed_by_the_utc_hour_of_the_prediction() -> None:
    # Catches: the hour taken in local time or of the wrong unit (ms/µs), hours not wrapping at
    # a day (25, 26...), keys not zero-padded, an abstention (None) scored, bins in the hours.
    cal = _Calibration(("ensemble", "momentum"))
    cal.add(_scored(T0 - 1, 0.6, True, 0.7))  # 2024-08-07 23:59:59.999999999 UTC
    cal.add(_scored(T0, 0.4, True, None))  # 2024-08-08 00:00:00: momentum abstains
    cal.add(_scored(T0 + 29 * 3600 * 10**9 + 1, 0.3, False, 0.2))  # the next day, 05:00
    block = cal.report()
    ens, mom = block["ensemble"], block["stages"]["momentum"]
    assert list(ens["per_hour"]) == ["00", "05", "23"]
    assert list(mom["per_hour"]) == ["05", "23"]  # no outcome of momentum in hour 00
    # one outcome an hour: brier (p − y)², n 1, no bins
    assert ens["per_hour"]["23"]["brier"] == pytest.approx(0.16)  # (0.6 − 1)²
    assert ens["per_hour"]["00"]["brier"] == pytest.approx(0.36)  # (0.4 − 1)²
    assert mom["per_hour"]["05"]["brier"] == pytest.approx(0.04)  # 0.2²
    for entry in (*ens["per_hour"].values(), *mom["per_hour"].values()):
        assert set(entry) == _CAL_KEYS and entry["n"] == 1
    assert ens["overall"]["n"] == ens["per_symbol"]["BTCUSDT"]["n"] == 3
    assert mom["overall"]["n"] == 2 and "bins" in mom["per_symbol"]["BTCUSDT"]
    # momentum: (0.7 − 1)² and 0.2² over 2 = (0.09 + 0.04) / 2
    assert mom["overall"]["brier"] == pytest.approx(0.065)


def test_real_run_reports_calibration_that_agrees_with_its_scores(run: _Run) -> None:
    # Catches: the block built from other outcomes than the scores (abstentions scored, an
    # outcome counted twice or per symbol lost in the overall merge), the decomposition not
    # adding up, per-symbol or per-hour entries that do not partition the outcomes.
    rep, cal = run.report, run.report["calibration"]
    assert cal["bins"] == 10 and list(cal["stages"]) == list(REAL_STAGES)
    pairs = [(cal["ensemble"], rep["ensemble"])]
    pairs += [(cal["stages"][s], rep["stages"][s]) for s in REAL_STAGES]
    for block, score in pairs:
        o = block["overall"]
        assert set(o) == _CAL_KEYS | {"bins"}
        assert o["n"] == score["n_scored"] > 1000
        assert abs(o["brier"] - score["brier"]) < 1e-9
        terms = (
            o["reliability"] - o["resolution"] + o["uncertainty"]
            + o["within_bin_variance"] - 2 * o["within_bin_covariance"]
        )  # fmt: skip
        assert abs(terms - o["brier"]) < 1e-12
        assert 0.0 <= o["ece"] < 0.5 and 5 <= len(o["bins"]) <= 10
        assert sum(b[2] for b in o["bins"]) == o["n"]
        assert sum(e["n"] for e in block["per_symbol"].values()) == o["n"]
        assert sum(e["n"] for e in block["per_hour"].values()) == o["n"]
        assert all("bins" in e for e in block["per_symbol"].values())
        assert all(set(e) == _CAL_KEYS for e in block["per_hour"].values())
    for sym, s in rep["per_symbol"].items():
        mine = cal["ensemble"]["per_symbol"][sym]
        assert mine["n"] == s["ensemble"]["n_scored"]
        assert abs(mine["brier"] - s["ensemble"]["brier"]) < 1e-9
    # the reliability diagrams draw the reported bins, dot for dot
    for name, el in _rel_svgs(run.page).items():
        model = name.split(":")[0]
        block = cal["ensemble"] if model == "ensemble" else cal["stages"][model]
        assert [list(d[2:]) for d in _dots(el)] == block["overall"]["bins"]
        assert float(el.get("data-ece", "")) == pytest.approx(block["overall"]["ece"])


def test_real_run_calibration_tables_show_the_reports_numbers(run: _Run) -> None:
    # Catches: a model's row showing another's numbers, REL and RES swapped, a symbol or hour
    # table missing a row.
    tables = _Tables()
    tables.feed(run.page)
    overall, per_symbol, per_hour = tables.tables["Calibration"]
    assert overall[0] == ["model", "n", "ECE", "Brier", "REL", "RES", "UNC"]
    cal = run.report["calibration"]
    blocks = {"ensemble": cal["ensemble"], **cal["stages"]}

    def cells(e: Json) -> list[str]:
        return [f"{e['n']:,}"] + [
            f"{e[k]:.4f}" for k in ("ece", "brier", "reliability", "resolution", "uncertainty")
        ]

    assert overall[1:] == [[m, *cells(b["overall"])] for m, b in blocks.items()]
    assert per_symbol[0][:2] == ["symbol", "model"]
    assert per_symbol[1:] == [
        [sym, m, *cells(b["per_symbol"][sym])] for sym in run.report["per_symbol"]
        for m, b in blocks.items()
    ]  # fmt: skip
    hours = cal["ensemble"]["per_hour"]
    assert per_hour == [["hour (UTC)", "n", "ECE", "Brier"]] + [
        [h, f"{e['n']:,}", f"{e['ece']:.4f}", f"{e['brier']:.4f}"] for h, e in hours.items()
    ]


def test_calibration_tables_escape_names_and_show_missing_numbers_as_dashes() -> None:
    # Catches: a symbol or stage name from the data written unescaped, None printed as "None".
    report, charts = _inputs(("BTCUSDT",))
    entry = {"n": 4, "ece": 0.1, "brier": 0.25, "reliability": 0.0625, "resolution": 0.0,
             "uncertainty": 0.1875, "bins": [[0.5, 0.75, 4]]}  # fmt: skip
    empty = dict.fromkeys(entry, None) | {"n": 0}
    report["calibration"] = {
        "bins": 10,
        "ensemble": {"overall": entry, "per_symbol": {EVIL: entry}, "per_hour": {"07": entry}},
        "stages": {EVIL: {"overall": empty, "per_symbol": {}, "per_hour": {}}},
    }
    page = render_html(report, charts)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    tables = _Tables()
    tables.feed(page)
    overall, per_symbol, per_hour = tables.tables["Calibration"]
    assert overall[2][1:] == ["0"] + ["—"] * 5 and "None" not in page
    assert per_symbol[1] == [EVIL, "ensemble", "4", "0.1000", "0.2500", "0.0625", "0.0000",
                             "0.1875"]  # fmt: skip
    assert per_symbol[2] == [EVIL, EVIL, *["—"] * 6]  # the stage had no outcomes there
    assert per_hour[1] == ["07", "4", "0.1000", "0.2500"]


# --------------------------------------------------------------------------- paper positions, fills
# `--paper` runs add charts["paper"]["positions"] ({symbol: [[ts_ns, size after the fill], ...]})
# and charts["paper"]["fills"] ({symbol: [[ts_ns, side, price, size], ...]}): a step line of the
# position per symbol in the paper section, and the fills as markers on that symbol's price chart.

_DIAMOND = re.compile(r"M(-?\d+\.\d) (-?\d+\.\d)l4\.5 4\.5-4\.5 4\.5-4\.5-4\.5z")  # buy fill
_SQUARE = re.compile(r"M(-?\d+\.\d) (-?\d+\.\d)h7v7h-7z")  # sell fill
S = 10**9


def _paper(
    positions: dict[str, Any] | None = None, fills: dict[str, Any] | None = None
) -> dict[str, Any]:
    paper: dict[str, Any] = {
        "equity": [[T0 + i * S, 10_000.0 + math.sin(i / 9)] for i in range(400)]
    }
    if positions is not None:
        paper["positions"] = positions
    if fills is not None:
        paper["fills"] = fills
    return paper


def _fill_marks(svg: _Svg, name: str) -> list[tuple[float, float]]:
    """The (t, price) each marker of ``name`` ("buy fill"/"sell fill") marks, by the page's
    scale, asserting its shape and colour; [] when the series has no markers drawn."""
    paths = [p for p in svg.named("path", name) if p.get("data-kind")]
    if not paths:
        return []
    (path,) = paths
    d = path.get("d", "")
    diamonds, squares = _DIAMOND.findall(d), _SQUARE.findall(d)
    if name == "buy fill":
        assert diamonds and not squares and path.get("fill") == "#0072b2", "buy fill: blue diamond"
        xy = [(float(x), float(y) + 4.5) for x, y in diamonds]  # from the top corner
    else:
        assert squares and not diamonds and path.get("fill") == "#e69f00", (
            "sell fill: orange square"
        )
        xy = [(float(x) + 3.5, float(y) + 3.5) for x, y in squares]  # from the top-left corner
    assert len(xy) == d.count("z")  # no marker of another shape hiding in the path
    return sorted((svg.t(x), svg.v(y)) for x, y in xy)


def _same(got: list[tuple[float, float]], want: list[tuple[float, float]], svg: _Svg) -> bool:
    """The same points, one for one, within the 0.1 px the page writes."""
    return len(got) == len(want) and all(
        abs(a[0] - b[0]) <= svg.tol_t and abs(a[1] - b[1]) <= svg.tol_v
        for a, b in zip(sorted(got), sorted(want), strict=True)
    )


def _line(svg: _Svg, name: str) -> list[tuple[float, float]]:
    (el,) = svg.named("polyline", name)
    return [(svg.t(x), svg.v(y)) for x, y in _points(el)]


def test_position_is_a_step_line_from_zero_held_to_the_end_by_hand() -> None:
    # Catches: a position drawn as a line between fills (a ramp, not a step), not starting at 0
    # before the first fill, not held to the end of the run, the first (not the last) size of
    # fills at one timestamp, an unchanged size drawn as a step, no zero line.
    report, charts = _inputs(("BTCUSDT",))  # price and weights span T0 .. T0 + 399 s
    sizes = [[T0 + 100 * S, 0.5], [T0 + 200 * S, 0.5], [T0 + 300 * S, -0.25],
             [T0 + 300 * S, 0.75], [T0 + 350 * S, 0.0]]  # fmt: skip
    charts["paper"] = _paper({"BTCUSDT": sizes})
    page = render_html(report, charts)
    svgs = _svgs(page)
    svg = svgs["BTCUSDT position over time"]
    t0 = T0 / 1e9
    want = [(0, 0.0), (100, 0.0), (100, 0.5), (300, 0.5), (300, 0.75), (350, 0.75), (350, 0.0),
            (399, 0.0)]  # fmt: skip
    assert _same(_line(svg, "position"), [(t0 + t, v) for t, v in want], svg)
    # the dashed zero line, with its legend entry
    (zero,) = [e for e in svg.el.iter("line") if e.get("stroke-dasharray") == "6 4" and e.get("x1")]
    assert abs(svg.v(float(zero.get("y1", ""))) - 0.0) <= svg.tol_v
    assert ">flat (0)</text>" in ET.tostring(svg.el, encoding="unicode")
    # on the time axis of the symbol's price and weights charts (no fills key: no fills drawn)
    price = svgs["BTCUSDT price with signals"]
    weights = svgs["BTCUSDT ensemble weights over time"]
    assert (svg.x0, svg.x1) == (price.x0, price.x1) == (weights.x0, weights.x1)
    assert page.index("<h2>Paper account</h2>") < page.index('aria-label="BTCUSDT position over')


def test_fills_are_drawn_on_their_own_symbols_price_chart_only() -> None:
    # Catches: a symbol's fills drawn on every price chart (or on another symbol's), buy and
    # sell fills swapped or drawn alike, a fill at the wrong time or price, a dropped fill, a
    # fill after the last signal outside the price chart's (shared) time axis.
    report, charts = _inputs()  # BTCUSDT prices near 100, ETHUSDT near 200
    btc = [
        [T0 + 50 * S, "buy", 101.0, 0.1],
        [T0 + 120 * S, "buy", 104.5, 0.1],
        [T0 + 120 * S, "buy", 104.6, 0.2],
        [T0 + 200 * S, "sell", 98.0, 0.3],
        [T0 + 450 * S, "sell", 107.0, 0.1],
    ]  # the last one after the last signal
    eth = [[T0 + 10 * S, "buy", 201.0, 1.0], [T0 + 60 * S, "sell", 205.0, 1.0],
           [T0 + 61 * S, "sell", 204.0, 1.0], [T0 + 300 * S, "sell", 199.0, 1.0],
           [T0 + 301 * S, "sell", 198.0, 1.0]]  # fmt: skip
    positions = {"BTCUSDT": [[f[0], 0.1] for f in btc], "ETHUSDT": [[f[0], 1.0] for f in eth]}
    charts["paper"] = _paper(positions, {"BTCUSDT": btc, "ETHUSDT": eth})
    svgs = _svgs(render_html(report, charts))
    for sym, fills in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        svg = svgs[f"{sym} price with signals and paper fills"]
        for side in ("buy", "sell"):
            want = [(f[0] / 1e9, f[2]) for f in fills if f[1] == side]
            assert _same(_fill_marks(svg, f"{side} fill"), want, svg), (sym, side)
        legend = ET.tostring(svg.el, encoding="unicode")
        assert ">buy fill</text>" in legend and ">sell fill</text>" in legend
        # the fill at T0 + 450 s widens the price chart and, with it, the weights chart
        assert svg.x1 == svgs[f"{sym} ensemble weights over time"].x1
    assert svgs["BTCUSDT price with signals and paper fills"].x1 == T0 / 1e9 + 450
    assert svgs["ETHUSDT price with signals and paper fills"].x1 == T0 / 1e9 + 399


def test_a_symbol_without_fills_gets_no_markers_and_a_note() -> None:
    # Catches: one symbol's fills drawn on a symbol that has none, a crash (or an empty chart)
    # for a symbol the paper trader never filled.
    report, charts = _inputs()
    btc = [[T0 + 50 * S, "buy", 101.0, 0.1], [T0 + 80 * S, "sell", 103.0, 0.1]]
    charts["paper"] = _paper({"BTCUSDT": [[T0 + 50 * S, 0.1], [T0 + 80 * S, 0.0]]},
                             {"BTCUSDT": btc})  # fmt: skip
    page = render_html(report, charts)
    svgs = _svgs(page)
    eth = svgs["ETHUSDT price with signals and paper fills"]
    assert _fill_marks(eth, "buy fill") == [] and _fill_marks(eth, "sell fill") == []
    btc_svg = svgs["BTCUSDT price with signals and paper fills"]
    assert len(_fill_marks(btc_svg, "buy fill")) == len(_fill_marks(btc_svg, "sell fill")) == 1
    assert "BTCUSDT position over time" in svgs and "ETHUSDT position over time" not in svgs
    assert "no data: ETHUSDT: no fills" in page
    # a paper run without any fill: notes, and price charts without markers
    charts["paper"] = _paper({}, {})
    page = render_html(report, charts)
    assert page.count("no fills") == 2 and 'data-kind="diamond"' not in page
    assert 'data-kind="square"' not in page and "position over time" not in page


@pytest.mark.parametrize("old", [False, True])
def test_nothing_of_positions_or_fills_without_their_keys(old: bool) -> None:
    # Catches: fill series (or their legend, or a changed title) on the price charts of a run
    # without paper fills; a positions part in an old report's paper section; any paper section
    # in a run without --paper.
    report, charts = _inputs()
    plain = render_html(report, charts)
    assert "Paper account" not in plain and "Positions" not in plain
    no_fills = ("buy fill", "sell fill", "paper fills", 'data-kind="diamond"', 'data-kind="square"')
    assert "position over time" not in plain and not any(f in plain for f in no_fills)
    assert 'aria-label="BTCUSDT price with signals"' in plain and plain.count("<svg") == 5
    if old:  # a report from before positions and fills: equity and drawdown only
        charts["paper"] = _paper()
        page = render_html(report, charts)
        cut = page.index("<section>\n<h2>Paper account</h2>")
        assert page[:cut] == plain[: plain.rindex('<div id="tip">')]  # the rest unchanged
        paper = page[cut:]
        assert "paper equity" in paper and page.count("<svg") == 5 + 2
        assert "Positions" not in paper and "position over time" not in paper
        assert not any(f in page for f in no_fills)


def test_long_positions_and_fills_are_thinned_and_stay_a_step_line() -> None:
    # Catches: a position series drawn with every point (an unbounded page), thinned by
    # dropping vertices of the step line (slanted segments), or not ending on the last size;
    # unbounded fill markers.
    report, charts = _inputs(("BTCUSDT",))
    n = 3 * MAX_POINTS + 5
    ts = [T0 + i * 10**8 for i in range(n)]  # 0.1 s apart, so the span is 1,200 s
    sizes = [[t, float(1 + i % 3) * (-1) ** i] for i, t in enumerate(ts)]
    fills = [[t, "buy" if i % 2 else "sell", 100.0 + i % 7, 0.1] for i, t in enumerate(ts)]
    charts["paper"] = _paper({"BTCUSDT": sizes}, {"BTCUSDT": fills})
    page = render_html(report, charts)
    svgs = _svgs(page)
    svg = svgs["BTCUSDT position over time"]
    (el,) = svg.named("polyline", "position")
    pts = _points(el)
    assert 100 < len(pts) <= MAX_POINTS
    assert all(a[0] == b[0] or a[1] == b[1] for a, b in itertools.pairwise(pts)), "slanted"
    assert abs(svg.v(pts[-1][1]) - sizes[-1][1]) <= svg.tol_v
    assert abs(svg.t(pts[-1][0]) - ts[-1] / 1e9) <= svg.tol_t
    price = svgs["BTCUSDT price with signals and paper fills"]
    for side in ("buy fill", "sell fill"):
        assert 100 < len(_fill_marks(price, side)) <= MAX_POINTS
    assert len(page) < 3_000_000


def test_paper_garbage_is_skipped_and_names_escaped() -> None:
    # Catches: a NaN price or size written into the SVG, a fill of an unknown side drawn as a
    # sell (or a buy), a crash on malformed rows, an unescaped symbol name in the paper part.
    report, charts = _inputs((EVIL, "ETHUSDT"))
    fills = [
        [T0 + 5 * S, "buy", 100.0, 1.0],
        [T0, "buy", math.nan, 1.0],
        [T0, "hold", 100.0, 1.0],
        [None, "sell", 100.0, 1.0],
        "junk",
        [T0, "buy"],
        [T0, 1, 100.0, 1.0],
        [T0 + 6 * S, "sell", math.inf, 1.0],
    ]
    sizes = [[T0, math.nan], [T0 + 5 * S, 1.0], "junk", [T0 + 6 * S, -math.inf], [None, 2.0]]
    charts["paper"] = _paper({EVIL: sizes, "ETHUSDT": "junk"}, {EVIL: fills, "ETHUSDT": 7})
    page = render_html(report, charts)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt; position over time" in page
    assert not re.search(r"\b(nan|inf)\b", page, flags=re.I)
    svgs = _svgs(page)
    price = next(v for k, v in svgs.items() if k.endswith("price with signals and paper fills")
                 and "alert" in k)  # fmt: skip
    assert _same(_fill_marks(price, "buy fill"), [(T0 / 1e9 + 5, 100.0)], price)
    assert _fill_marks(price, "sell fill") == []
    pos = next(v for k, v in svgs.items() if k.endswith("position over time"))
    t0 = T0 / 1e9
    assert _same(_line(pos, "position"), [(t0, 0.0), (t0 + 5, 0.0), (t0 + 5, 1.0),
                                          (t0 + 399, 1.0)], pos)  # fmt: skip
    assert "no data: ETHUSDT: no fills" in page


# A real paper run of the fixture heads: the page's markers and position lines read back against
# fills.jsonl, which the report does not read (so a disagreement on the charts' format shows).


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Json]]:
    import orjson

    from config.paper import PaperConfig

    out = tmp_path_factory.mktemp("paper_report")
    run_backtest(SAMPLE_FILES, out_dir=out, prefetch=False, paper=PaperConfig())
    fills = [orjson.loads(line) for line in (out / "fills.jsonl").read_bytes().splitlines()]
    return (out / "report.html").read_text(encoding="utf-8"), fills


def test_real_paper_run_draws_every_fill_and_the_position_it_makes(
    paper_run: tuple[str, list[Json]],
) -> None:
    # Catches: the report and the backtest disagreeing on the charts' layout (a fill's fields
    # in another order, positions keyed otherwise), fills on the wrong symbol or side, a
    # position line that is not the running sum of the symbol's fills.
    page, fills = paper_run
    svgs = _svgs(page)
    for sym in ("BTCUSDT", "ETHUSDT"):
        mine = [f for f in fills if f["symbol"] == sym]
        assert {f["side"] for f in mine} == {"buy", "sell"}  # guards the fixture
        price = svgs[f"{sym} price with signals and paper fills"]
        for side in ("buy", "sell"):
            want = [(f["ts"] / 1e9, f["price"]) for f in mine if f["side"] == side]
            assert _same(_fill_marks(price, f"{side} fill"), want, price), (sym, side)
        # the position: the running sum of signed fill sizes, as of the last fill of each instant
        held, changes = 0.0, []  # (t, size before, size after)
        by_ts: dict[int, float] = {}
        for f in mine:
            held += f["size"] if f["side"] == "buy" else -f["size"]
            by_ts[f["ts"]] = held
        before = 0.0
        for ts, after in by_ts.items():
            if abs(after - before) > 1e-9:
                changes.append((ts / 1e9, before, after))
                before = after
        svg = svgs[f"{sym} position over time"]
        got = sorted(_line(svg, "position"))
        want = [(t, v) for t, b, a in changes for v in (b, a)]
        want = sorted([(price.x0, 0.0), *want, (price.x1, changes[-1][2])])
        tol = (svg.tol_t, 2 * svg.tol_v)
        assert all(_near(want, t, v, *tol) for t, v in got), sym
        assert all(_near(got, t, v, *tol) for t, v in want), sym
