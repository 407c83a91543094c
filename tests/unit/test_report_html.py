"""quorum.report_html: one self-contained, escaped, deterministic page; empty and odd inputs."""

from __future__ import annotations

import itertools
import math
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from quorum.report_html import MAX_POINTS, decimate, render_html

STAGES = ("microstructure", "momentum", "volatility")
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
