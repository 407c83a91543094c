"""A self-contained HTML page for a backtest: headline tables and inline-SVG charts.

:func:`render_html` is pure and deterministic: the same ``report`` and ``charts`` give the same
bytes. The page loads nothing from anywhere (no scripts, fonts, images or styles from outside);
charts are SVG built here, with a few lines of inline JS for a hover read-out. Every string that
comes from the data is escaped. Points that are not finite numbers are skipped, and a series
longer than :data:`MAX_POINTS` is thinned to every k-th point (the last point is always kept).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, Literal

__all__ = ["MAX_POINTS", "decimate", "render_html"]

MAX_POINTS = 4000
"""Most points drawn for one series; longer ones are thinned by :func:`decimate`."""

COIN_LOG_LOSS = math.log(2.0)
COIN_BRIER = 0.25

_ENSEMBLE_COLOR = "#111827"
_PRICE_COLOR = "#475569"
_BUY_COLOR = "#16a34a"
_SELL_COLOR = "#dc2626"
# paper fills on the price chart: the Okabe-Ito blue/orange pair, apart from the signals' green/red
_BUY_FILL_COLOR = "#0072b2"
_SELL_FILL_COLOR = "#e69f00"
_REF_COLOR = "#9ca3af"
# Colour-blind-friendly (Okabe-Ito first), assigned to stages in order of first appearance.
_PALETTE = (
    "#0072b2",
    "#e69f00",
    "#cc79a7",
    "#009e73",
    "#56b4e9",
    "#d55e00",
    "#8c564b",
    "#7f7f7f",
)

_REF_LINE = 'stroke="#6b7280" stroke-width="1.2" stroke-dasharray="6 4"'
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_W = 1000  # SVG user units; the SVG scales to the page width
_LEFT, _RIGHT, _TOP = 72, 24, 58
# Time ticks the x axis may use, in seconds.
_TIME_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
)  # fmt: skip
# datetime can show these (years 1..9999); timestamps outside are treated as garbage.
_MIN_S, _MAX_S = -62_135_596_800.0, 253_402_300_799.0

Point = tuple[float, float]


# --------------------------------------------------------------------------- data cleaning


def _num(v: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, inf, bool, strings...)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _dict(v: Any) -> dict[Any, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    return list(v) if isinstance(v, tuple) else []


def decimate(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """Every k-th point with the smallest k that fits ``max_points``, always ending on the last."""
    n = len(points)
    if n <= max_points:
        return list(points)
    k = math.ceil((n - 1) / (max_points - 1)) if max_points > 1 else n
    out = list(points[::k])
    if (n - 1) % k:
        out.append(points[-1])
    return out


def _seconds(v: Any) -> float | None:
    """A timestamp in ns as seconds, or None for garbage and times ``datetime`` cannot show."""
    ts = _num(v)
    if ts is None:
        return None
    s = ts / 1e9
    return s if _MIN_S <= s <= _MAX_S else None


def _by_time(pts: list[Point]) -> list[Point]:
    """Sorted by time; stable, so points of one timestamp keep their order."""
    if any(pts[i][0] > pts[i + 1][0] for i in range(len(pts) - 1)):
        pts.sort(key=lambda p: p[0])
    return pts


def _clean(raw: Any) -> list[Point]:
    """``[[ts_ns, value], ...]`` as ``(seconds, value)``: garbage skipped, sorted."""
    pts: list[Point] = []
    for item in _list(raw):
        pair = _list(item)
        if len(pair) < 2:
            continue
        s, val = _seconds(pair[0]), _num(pair[1])
        if s is not None and val is not None:
            pts.append((s, val))
    return _by_time(pts)


def _series(raw: Any) -> list[Point]:
    """``[[ts_ns, value], ...]`` as ``(seconds, value)``: garbage skipped, sorted, decimated."""
    return decimate(_clean(raw))


def _fills(raw: Any) -> tuple[list[Point], list[Point]]:
    """``[[ts_ns, side, price, size], ...]`` as the buy and the sell fills' ``(seconds, price)``:
    garbage (and a side other than buy/sell) skipped, sorted, decimated."""
    buys: list[Point] = []
    sells: list[Point] = []
    for item in _list(raw):
        row = _list(item)
        if len(row) < 3 or not isinstance(row[1], str):
            continue
        s, price, side = _seconds(row[0]), _num(row[2]), row[1].lower()
        if s is None or price is None:
            continue
        if side == "buy":
            buys.append((s, price))
        elif side == "sell":
            sells.append((s, price))
    return decimate(_by_time(buys)), decimate(_by_time(sells))


def _steps(raw: Any, x_range: tuple[float, float] | None) -> list[Point]:
    """``[[ts_ns, size_after_fill], ...]`` as the vertices of a step line: 0 from the start of
    ``x_range`` (or the first fill) to the first fill, each size held until the next change,
    the last one to the end of ``x_range``. Of fills sharing a timestamp only the last size
    counts (they are one instant). With more than :data:`MAX_POINTS` vertices, every k-th
    change is kept (:func:`decimate`); the line stays a step line. No fills: no points.
    """
    last: list[Point] = []
    for t, v in _clean(raw):
        if last and last[-1][0] == t:
            last[-1] = (t, v)
        else:
            last.append((t, v))
    if not last:
        return []
    start, end = last[0][0], last[-1][0]
    if x_range is not None:
        start, end = min(start, x_range[0]), max(end, x_range[1])
    out: list[Point] = [(start, 0.0)]
    held = 0.0
    for t, v in decimate(last, max(MAX_POINTS // 2 - 1, 2)):
        if v != held:
            out += [(t, held), (t, v)]
            held = v
    out.append((end, held))
    return out


# --------------------------------------------------------------------------- formatting


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def _int(v: Any) -> str:
    f = _num(v)
    return "—" if f is None else f"{round(f):,}"


def _flt(v: Any, digits: int = 4) -> str:
    f = _num(v)
    return "—" if f is None else f"{f:,.{digits}f}"


def _pct(v: Any, digits: int = 2) -> str:
    f = _num(v)
    return "—" if f is None else f"{100.0 * f:.{digits}f}%"


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _clock(seconds: float, step: float = 1.0) -> str:
    d = _utc(seconds)
    if step >= 1.0:
        return d.strftime("%H:%M:%S")
    return d.strftime("%H:%M:%S.") + f"{d.microsecond // 1000:03d}"


def _duration(seconds: float) -> str:
    s = round(seconds)
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{days}d"] if days else []
    if h or days:
        parts.append(f"{h}h")
    if m or h or days:
        parts.append(f"{m}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def _decimals(step: float) -> int:
    """Fewest decimals that show ``step`` exactly (0.25 -> 2, 5 -> 0)."""
    for d in range(9):
        if abs(round(step, d) - step) <= 1e-9 * abs(step):
            return d
    return 9


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw * (1 - 1e-12):
            return m * mag
    return 10.0 * mag


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    out: list[float] = []
    i = first
    while i * step <= hi + 1e-9 * step and len(out) < 100:
        out.append(i * step)
        i += 1
    return out


# --------------------------------------------------------------------------- the chart helper


@dataclass(frozen=True, slots=True)
class _Series:
    name: str
    color: str
    points: list[Point]
    kind: Literal["line", "up", "down", "diamond", "square"] = "line"
    width: float = 1.6


@dataclass(frozen=True, slots=True)
class _Ref:
    """A dashed horizontal reference line."""

    y: float
    label: str


def _nodata(what: str) -> str:
    return f'<p class="nodata">no data: {_e(what)}</p>\n'


def _legend(series: Sequence[_Series], refs: Sequence[_Ref], y: float) -> list[str]:
    items: list[tuple[str, str]] = []  # (icon at x=0, label)
    for s in series:
        if s.kind == "line":
            icon = f'<line x2="18" stroke="{s.color}" stroke-width="{max(s.width, 2.0):g}"/>'
        else:
            icon = f'<path d="{_marker(s.kind, 9.0, 0.0, -4.0)}" fill="{s.color}"/>'
        items.append((icon, s.name))
    items += [(f'<line x2="18" {_REF_LINE}/>', r.label) for r in refs]
    out: list[str] = []
    x = float(_LEFT)
    for icon, label in items:
        width = 40 + 7.6 * len(label)
        if x + width > _W - _RIGHT and x > _LEFT:
            x, y = float(_LEFT), y + 16
        icon = f'<g transform="translate({x:.0f} {y - 4:.0f})">{icon}</g>'
        out.append(f'{icon}<text x="{x + 24:.0f}" y="{y:.0f}">{_e(label)}</text>')
        x += width
    return out


def _marker(kind: str, x: float, y: float, gap: float = 1.0) -> str:
    """A triangle whose tip is ``gap`` below (up: BUY) or above (down: SELL) the point, or a
    diamond (a buy fill) or square (a sell fill) centred on it."""
    if kind == "up":
        return f"M{x:.1f} {y + gap:.1f}l4 7.5h-8z"
    if kind == "diamond":
        return f"M{x:.1f} {y - 4.5:.1f}l4.5 4.5-4.5 4.5-4.5-4.5z"
    if kind == "square":
        return f"M{x - 3.5:.1f} {y - 3.5:.1f}h7v7h-7z"
    return f"M{x:.1f} {y - gap:.1f}l4-7.5h-8z"


def _chart(
    title: str,
    series: Sequence[_Series],
    *,
    height: int = 260,
    x_range: tuple[float, float] | None = None,
    y_extent: tuple[float, float] | None = None,
    refs: Sequence[_Ref] = (),
    pct: bool = False,
) -> str:
    """One SVG line chart: title, legend, axes with ticks, lines and/or triangle markers.

    ``x_range`` lets charts of one symbol share a time axis; ``y_extent`` is a range the y axis
    always covers (it still grows to fit the data). With no points at all, a "no data" note.
    """
    drawn = [s for s in series if s.points]
    if not drawn:
        return _nodata(title)

    xs = [p[0] for s in drawn for p in s.points]
    ys = [p[1] for s in drawn for p in s.points] + [r.y for r in refs]
    x0, x1 = min(xs), max(xs)
    if x_range is not None:
        x0, x1 = min(x0, x_range[0]), max(x1, x_range[1])
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x1 + 1.0
    y0, y1 = min(ys), max(ys)
    if y_extent is not None:
        y0, y1 = min(y0, y_extent[0]), max(y1, y_extent[1])
    pad = (y1 - y0) * 0.06 if y1 > y0 else max(abs(y0) * 0.01, 1e-6)
    y0, y1 = y0 - pad, y1 + pad

    days_differ = _utc(x0).date() != _utc(x1).date()
    bottom = 44 if days_differ else 30
    px0, px1, py1, py0 = float(_LEFT), float(_W - _RIGHT), float(_TOP), float(height - bottom)

    def sx(t: float) -> float:
        return px0 + (t - x0) / (x1 - x0) * (px1 - px0)

    def sy(v: float) -> float:
        return py0 - (v - y0) / (y1 - y0) * (py0 - py1)

    scale = 100.0 if pct else 1.0
    unit = "%" if pct else ""
    # Hover read-out precision: the polyline keeps 0.1 px, so that is what can be recovered.
    res = (y1 - y0) * scale / (py0 - py1) / 10.0
    tip_digits = min(max(math.ceil(-math.log10(res)), 0), 6)

    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {height}" role="img" aria-label="{_e(title)}" '
        f'font-family="{_FONT}" '
        f'data-x0="{x0!r}" data-x1="{x1!r}" data-px0="{px0:g}" data-px1="{px1:g}" '
        f'data-y0="{y0!r}" data-y1="{y1!r}" data-py0="{py0:g}" data-py1="{py1:g}" '
        f'data-s="{scale:g}" data-d="{tip_digits}" data-u="{unit}">',
        f'<rect x="{px0:g}" y="{py1:g}" width="{px1 - px0:g}" height="{py0 - py1:g}" '
        'fill="#fcfcfd"/>',
        f'<text x="{px0:g}" y="20" font-size="15" font-weight="600" fill="#111827">'
        f"{_e(title)}</text>",
    ]
    grid: list[str] = []
    ylabels: list[str] = []
    xlabels: list[str] = []

    # y axis: gridlines and labels
    ystep = _nice_step((y1 - y0) * scale, 8)
    ydig = _decimals(ystep)
    for v in _ticks(y0 * scale, y1 * scale, ystep):
        y = sy(v / scale)
        grid.append(f'<line x1="{px0:g}" x2="{px1:g}" y1="{y:.1f}" y2="{y:.1f}"/>')
        ylabels.append(f'<text x="{px0 - 6:g}" y="{y + 4:.1f}">{v:,.{ydig}f}{unit}</text>')

    # x axis: time ticks on round UTC clock times, the date under the first tick of each day
    span = x1 - x0
    xstep = next((float(s) for s in _TIME_STEPS if span / s <= 7), _nice_step(span, 6))
    if span < 5:
        xstep = _nice_step(span, 5)
    last_day = ""
    for t in _ticks(x0, x1, xstep):
        x = sx(t)
        grid.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py1:g}" y2="{py0:g}"/>')
        xlabels.append(f'<text x="{x:.1f}" y="{py0 + 16:g}">{_clock(t, xstep)}</text>')
        day = _utc(t).strftime("%Y-%m-%d")
        if days_differ and day != last_day:
            xlabels.append(f'<text x="{x:.1f}" y="{py0 + 30:g}" fill="#6b7280">{day}</text>')
        last_day = day
    out += [
        f'<g stroke="#eef0f3">{"".join(grid)}</g>',
        f'<g font-size="11" fill="#374151" text-anchor="end">{"".join(ylabels)}</g>',
        f'<g font-size="11" fill="#374151" text-anchor="middle">{"".join(xlabels)}</g>',
        f'<text x="{px0 - 6:g}" y="{py0 + 16:g}" font-size="11" fill="#9ca3af" '
        'text-anchor="end">UTC</text>',
        f'<path d="M{px0:g} {py1:g}V{py0:g}H{px1:g}" fill="none" stroke="#9ca3af"/>',
    ]
    for r in refs:
        y = sy(r.y)
        out.append(f'<line x1="{px0:g}" x2="{px1:g}" y1="{y:.1f}" y2="{y:.1f}" {_REF_LINE}/>')

    # thin lines first, thick ones (the ensemble) over them, markers on top
    for s in sorted(drawn, key=lambda s: (s.kind != "line", s.width)):
        if s.kind == "line" and len(s.points) > 1:
            coords: list[str] = []
            for t, v in s.points:
                c = f"{sx(t):.1f},{sy(v):.1f}"
                if not coords or coords[-1] != c:
                    coords.append(c)
            out.append(
                f'<polyline data-name="{_e(s.name)}" fill="none" stroke="{s.color}" '
                f'stroke-width="{s.width:g}" stroke-linejoin="round" '
                f'points="{" ".join(coords)}"/>'
            )
        elif s.kind == "line":
            t, v = s.points[0]
            out.append(
                f'<circle data-name="{_e(s.name)}" cx="{sx(t):.1f}" cy="{sy(v):.1f}" r="3" '
                f'fill="{s.color}"/>'
            )
        else:
            d = "".join(_marker(s.kind, sx(t), sy(v)) for t, v in s.points)
            # data-name/data-kind: what a test (or a reader of the SVG) can find the markers by
            out.append(
                f'<path data-name="{_e(s.name)}" data-kind="{s.kind}" fill="{s.color}" '
                f'fill-opacity=".75" d="{d}"/>'
            )

    out.append(f'<g font-size="12" fill="#374151">{"".join(_legend(series, refs, 42.0))}</g>')
    out.append(
        f'<line class="xh" x1="0" x2="0" y1="{py1:g}" y2="{py0:g}" stroke="#6b7280" '
        'visibility="hidden" pointer-events="none"/>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- reliability

_REL = 300  # a reliability diagram's square viewBox side
_REL_PAD = (46, 14, 34, 40)  # left, right, top, bottom


def _bins(raw: Any) -> list[tuple[float, float, float]]:
    """``[[mean p, observed up rate, n], ...]``: garbage and empty bins skipped."""
    out: list[tuple[float, float, float]] = []
    for item in _list(raw):
        row = _list(item)
        if len(row) < 3:
            continue
        mp, fy, n = _num(row[0]), _num(row[1]), _num(row[2])
        if mp is None or fy is None or n is None:
            continue
        if n > 0 and 0.0 <= mp <= 1.0 and 0.0 <= fy <= 1.0:
            out.append((mp, fy, n))
    return out


def _reliability(name: str, bins: list[tuple[float, float, float]], color: str) -> str:
    """One reliability diagram: observed up rate against mean predicted P(up) per equal-mass
    bin, on equal x and y scales so the dashed diagonal (perfect calibration) is at 45°.

    The axes zoom to the bins (predictions here sit near 0.5) but always cover 0.45..0.55.
    Each bin is a dot whose ``data-p``/``data-y``/``data-n`` carry its numbers.
    """
    title = f"{name}: reliability"
    if not bins:
        return _nodata(title)
    vals = [v for mp, fy, _ in bins for v in (mp, fy)]
    lo, hi = min(min(vals), 0.45), max(max(vals), 0.55)
    pad = (hi - lo) * 0.05
    lo, hi = max(lo - pad, 0.0), min(hi + pad, 1.0)
    left, right, top, bottom = _REL_PAD
    px0, px1, py1, py0 = float(left), float(_REL - right), float(top), float(_REL - bottom)
    side = min(px1 - px0, py0 - py1)
    px1, py1 = px0 + side, py0 - side

    def sx(v: float) -> float:
        return px0 + (v - lo) / (hi - lo) * side

    def sy(v: float) -> float:
        return py0 - (v - lo) / (hi - lo) * side

    total = sum(n for _, _, n in bins)
    ece = sum(n / total * abs(fy - mp) for mp, fy, n in bins)
    step = _nice_step(hi - lo, 5)
    dig = _decimals(step)
    grid, xl, yl = [], [], []
    for v in _ticks(lo, hi, step):
        x, y = sx(v), sy(v)
        grid.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py1:g}" y2="{py0:g}"/>')
        grid.append(f'<line x1="{px0:g}" x2="{px1:g}" y1="{y:.1f}" y2="{y:.1f}"/>')
        xl.append(f'<text x="{x:.1f}" y="{py0 + 14:g}">{v:.{dig}f}</text>')
        yl.append(f'<text x="{px0 - 5:g}" y="{y + 4:.1f}">{v:.{dig}f}</text>')
    line = " ".join(f"{sx(mp):.1f},{sy(fy):.1f}" for mp, fy, _ in bins)
    dots = "".join(
        f'<circle cx="{sx(mp):.1f}" cy="{sy(fy):.1f}" r="3.5" fill="{color}" '
        f'data-p="{mp!r}" data-y="{fy!r}" data-n="{n:g}"/>'
        for mp, fy, n in bins
    )
    out = [
        f'<svg class="rel" viewBox="0 0 {_REL} {_REL}" role="img" aria-label="{_e(title)}" '
        f'font-family="{_FONT}" data-lo="{lo!r}" data-hi="{hi!r}" data-px0="{px0:g}" '
        f'data-py0="{py0:g}" data-side="{side:g}" data-ece="{ece!r}">',
        f'<rect x="{px0:g}" y="{py1:g}" width="{side:g}" height="{side:g}" fill="#fcfcfd"/>',
        f'<text x="{px0:g}" y="16" font-size="13" font-weight="600" fill="#111827">'
        f"{_e(name)}</text>",
        f'<text x="{px1:g}" y="16" font-size="11" fill="#374151" text-anchor="end">'
        f"ECE {ece:.4f}, {len(bins)} bins</text>",
        f'<g stroke="#eef0f3">{"".join(grid)}</g>',
        f'<g font-size="10" fill="#374151" text-anchor="middle">{"".join(xl)}</g>',
        f'<g font-size="10" fill="#374151" text-anchor="end">{"".join(yl)}</g>',
        f'<text x="{(px0 + px1) / 2:.1f}" y="{_REL - 6}" font-size="10" fill="#6b7280" '
        'text-anchor="middle">mean predicted P(up)</text>',
        f'<text transform="translate(11 {(py0 + py1) / 2:.1f}) rotate(-90)" font-size="10" '
        'fill="#6b7280" text-anchor="middle">observed up rate</text>',
        f'<path d="M{px0:g} {py1:g}V{py0:g}H{px1:g}" fill="none" stroke="#9ca3af"/>',
        f'<line class="diag" x1="{px0:g}" y1="{py0:g}" x2="{px1:g}" y2="{py1:g}" {_REF_LINE}/>',
        f'<polyline data-name="{_e(name)}" fill="none" stroke="{color}" stroke-width="1.4" '
        f'points="{line}"/>',
        f"<g>{dots}</g>",
        "</svg>",
    ]
    return "\n".join(out) + "\n"


_CAL_COLS = (
    ("ece", "ECE"),
    ("brier", "Brier"),
    ("reliability", "REL"),
    ("resolution", "RES"),
    ("uncertainty", "UNC"),
)


def _cal_cells(entry: dict[Any, Any], cols: Sequence[tuple[str, str]] = _CAL_COLS) -> str:
    return f"<td>{_int(entry.get('n'))}</td>" + "".join(
        f"<td>{_flt(entry.get(k))}</td>" for k, _ in cols
    )


def _cal_head(first: Sequence[str], cols: Sequence[tuple[str, str]] = _CAL_COLS) -> str:
    return "<tr>" + "".join(f"<th>{h}</th>" for h in (*first, "n", *(h for _, h in cols)))


def _calibration_tables(report: dict[str, Any], colors: dict[str, str]) -> str:
    """The report's ``calibration`` block as tables: every model overall and per symbol, and
    the ensemble per hour of event time; nothing without the block."""
    cal = _dict(report.get("calibration"))
    if not cal:
        return ""
    models = [("ensemble", _dict(cal.get("ensemble")))]
    models += [(str(k), _dict(v)) for k, v in _dict(cal.get("stages")).items()]

    def name_cell(name: str) -> str:
        return f'<td class="l">{_swatch(colors.get(name, _REF_COLOR))}{_e(name)}</td>'

    def cls(name: str) -> str:
        return ' class="ens"' if name == "ensemble" else ""

    overall = [_cal_head(["model"]) + "</tr>"]
    for name, m in models:
        overall.append(
            f"<tr{cls(name)}>{name_cell(name)}{_cal_cells(_dict(m.get('overall')))}</tr>"
        )
    symbols: list[str] = []
    for _, m in models:
        symbols += [str(k) for k in _dict(m.get("per_symbol")) if str(k) not in symbols]
    per_sym = [_cal_head(["symbol", "model"]) + "</tr>"]
    for sym in symbols:
        for name, m in models:
            entry = _dict(_dict(m.get("per_symbol")).get(sym))
            per_sym.append(
                f'<tr{cls(name)}><td class="l">{_e(sym)}</td>{name_cell(name)}'
                f"{_cal_cells(entry)}</tr>"
            )
    hour_cols = _CAL_COLS[:2]
    hours = _dict(models[0][1].get("per_hour"))
    per_hour = [_cal_head(["hour (UTC)"], hour_cols) + "</tr>"]
    for h in sorted(hours, key=str):
        per_hour.append(
            f'<tr><td class="l">{_e(h)}</td>{_cal_cells(_dict(hours[h]), hour_cols)}</tr>'
        )
    nb = _num(cal.get("bins"))
    what = f"{nb:.0f} equal-mass bins" if nb is not None else "equal-mass bins"

    def table(rows: list[str], empty: str) -> str:
        if len(rows) == 1:
            return _nodata(empty)
        return f'<table class="num">\n{chr(10).join(rows)}\n</table>\n'

    return (
        f'<p class="note">Over {_e(what)} of predicted P(up): ECE = Σ (n<sub>b</sub>/n) '
        "|mean p − up rate| per bin; the Brier score split into reliability (REL, lower is "
        "better), resolution (RES, higher is better) and uncertainty (UNC, the up rate times "
        "its complement), with Brier = REL − RES + UNC + WBV − 2·WBC (the within-bin variance "
        "and covariance of the predictions are in <code>report.json</code>).</p>\n"
        "<h3>All outcomes</h3>\n"
        + table(overall, "no models")
        + "<h3>Per symbol</h3>\n"
        + table(per_sym, "no scored outcomes per symbol")
        + "<h3>Ensemble per hour of event time (UTC hour of the prediction)</h3>\n"
        + table(per_hour, "no scored outcomes per hour")
    )


def _calibration(report: dict[str, Any], charts: dict[str, Any], colors: dict[str, str]) -> str:
    """The calibration section: the report's ``calibration`` tables and the reliability
    diagrams; nothing when there is neither a ``calibration`` block nor a ``reliability``
    chart entry."""
    tables = _calibration_tables(report, colors)
    if "reliability" not in charts and not tables:
        return ""
    parts = ["<section>\n<h2>Calibration</h2>\n", tables]
    if "reliability" in charts:
        rel = {str(k): _bins(v) for k, v in _dict(charts.get("reliability")).items()}
        nb = _num(charts.get("reliability_bins"))
        what = f"{nb:.0f} equal-mass bins" if nb is not None else "equal-mass bins"
        if tables:
            parts.append("<h3>Reliability diagrams</h3>\n")
        parts.append(
            f'<p class="note">Reliability per model: scored outcomes sorted by predicted P(up), '
            f"cut into {_e(what)} (equal counts); each dot is a bin's mean prediction against "
            "its observed up rate. On the dashed diagonal a model is calibrated.</p>\n"
        )
        if not any(rel.values()):
            parts.append(_nodata("no scored outcomes to bin"))
        else:
            for name, bins in rel.items():
                parts.append(_reliability(name, bins, colors.get(name, _REF_COLOR)))
    parts.append("</section>\n")
    return "".join(parts)


# --------------------------------------------------------------------------- page sections


def _colors(report: dict[str, Any], charts: dict[str, Any]) -> dict[str, str]:
    """One colour per model name, the same in every chart and table."""
    names: list[str] = []

    def add(keys: Iterable[Any]) -> None:
        for k in keys:
            name = str(k)
            if name != "ensemble" and name not in names:
                names.append(name)

    add(_dict(report.get("stages")))
    for sym in _dict(charts.get("symbols")).values():
        add(_dict(_dict(sym).get("weights")))
    add(_dict(charts.get("rolling_accuracy")))
    colors = {"ensemble": _ENSEMBLE_COLOR}
    for i, name in enumerate(names):
        colors[name] = _PALETTE[i % len(_PALETTE)]
    return colors


def _swatch(color: str) -> str:
    return f'<span class="sw" style="background:{color}"></span>'


def _header(report: dict[str, Any], cleaned: Iterable[list[Point]]) -> str:
    lo = hi = None
    for pts in cleaned:
        if pts:
            a, b = pts[0][0], pts[-1][0]
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    if lo is None or hi is None:
        span = "no timestamps in the data"
    else:
        fmt = "%Y-%m-%d %H:%M:%S"
        span = (
            f"{_utc(lo).strftime(fmt)} → {_utc(hi).strftime(fmt)} UTC "
            f"<span class=dim>({_duration(hi - lo)})</span>"
        )
    horizon = _num(report.get("horizon_s"))
    meta = [span, f"config <code>{_e(report.get('config_hash', '—'))}</code>"]
    if horizon is not None:
        meta.append(f"horizon {horizon:g} s")
    inputs = [_e(i) for i in _list(report.get("inputs"))]
    if len(inputs) <= 3:
        files = ", ".join(f"<code>{i}</code>" for i in inputs) or "—"
        inp = f'<p class="meta">inputs: {files}</p>'
    else:
        items = "".join(f"<li><code>{i}</code></li>" for i in inputs)
        inp = f"<details><summary>{len(inputs)} input files</summary><ul>{items}</ul></details>"
    return (
        "<header>\n<h1>quorum backtest report</h1>\n"
        f'<p class="meta">{" · ".join(meta)}</p>\n{inp}\n</header>\n'
    )


def _headline(report: dict[str, Any]) -> str:
    rejected = _num(report.get("rejected"))
    elapsed = _num(report.get("elapsed_s"))
    cells = [
        ("events", _int(report.get("events")), ""),
        ("trades", _int(report.get("trades")), ""),
        ("quotes", _int(report.get("quotes")), ""),
        ("rejected", _int(report.get("rejected")), "bad" if rejected else ""),
        ("elapsed", "—" if elapsed is None else f"{elapsed:,.1f} s", ""),
        ("events/s", _int(report.get("events_per_s")), ""),
    ]
    # optional counters some runs add
    cells += [(k, _int(report[k]), "") for k in ("skipped", "filtered") if k in report]
    head = "".join(f"<th>{k}</th>" for k, _, _ in cells)
    body = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for _, v, c in cells)
    return (
        '<section>\n<h2>Run</h2>\n<table class="num">\n'
        f"<tr>{head}</tr>\n<tr>{body}</tr>\n</table>\n</section>\n"
    )


def _ll_cell(v: Any) -> str:
    f = _num(v)
    if f is None:
        return "<td>—</td>"
    cls = "good" if f < COIN_LOG_LOSS else "bad"
    return f'<td class="{cls}">{f:.4f}</td>'


def _skill_cell(v: Any) -> str:
    f = _num(v)
    if f is None:
        return "<td>—</td>"
    skill = 1.0 - f / COIN_LOG_LOSS
    return f'<td class="{"good" if skill > 0 else "bad"}">{100.0 * skill:+.2f}%</td>'


def _scores(report: dict[str, Any], colors: dict[str, str]) -> str:
    rows = [
        "<tr><th>model</th><th>n scored</th><th>accuracy</th><th>log-loss</th>"
        '<th>log-loss skill vs coin</th><th>brier</th><th class="l">id</th></tr>'
    ]

    def row(name: str, score: dict[Any, Any], model: Any, cls: str = "") -> None:
        rows.append(
            f'<tr class="{cls}"><td class="l">{_swatch(colors.get(name, _REF_COLOR))}'
            f"{_e(name)}</td><td>{_int(score.get('n_scored'))}</td>"
            f"<td>{_pct(score.get('accuracy'))}</td>{_ll_cell(score.get('log_loss'))}"
            f"{_skill_cell(score.get('log_loss'))}<td>{_flt(score.get('brier'))}</td>"
            f'<td class="l">{f"<code>{_e(model)}</code>" if model else ""}</td></tr>'
        )

    row("ensemble", _dict(report.get("ensemble")), None, "ens")
    for name, stage in _dict(report.get("stages")).items():
        row(str(name), _dict(stage), _dict(stage).get("model"))
    rows.append(
        f'<tr class="coin"><td class="l">{_swatch(_REF_COLOR)}fair coin (p = 0.5)</td>'
        f"<td>—</td><td>50.00%</td><td>{COIN_LOG_LOSS:.4f}</td><td>+0.00%</td>"
        f"<td>{COIN_BRIER:.4f}</td><td></td></tr>"
    )
    return (
        "<section>\n<h2>Scores</h2>\n"
        '<p class="note">Probabilistic up/down calls at the horizon, scored on up/down outcomes '
        "only. Log-loss in <span class=good>green</span> beats a fair coin "
        f"(ln 2 ≈ {COIN_LOG_LOSS:.4f}); skill = 1 − log-loss / ln 2.</p>\n"
        f'<table class="num">\n{chr(10).join(rows)}\n</table>\n</section>\n'
    )


def _signals(report: dict[str, Any]) -> str:
    sig = _dict(report.get("signals"))
    total = _num(sig.get("total"))
    counts = [(a, _num(sig.get(a))) for a in ("BUY", "SELL", "HOLD")]
    denom = total if total else sum(c for _, c in counts if c) or None
    colors = {"BUY": _BUY_COLOR, "SELL": _SELL_COLOR, "HOLD": _REF_COLOR}
    rows = ["<tr><th>action</th><th>count</th><th>share</th></tr>"]
    bar: list[str] = []
    for action, c in counts:
        share = c / denom if c is not None and denom else None
        rows.append(
            f'<tr><td class="l">{_swatch(colors[action])}{action}</td><td>{_int(c)}</td>'
            f"<td>{_pct(share, 1)}</td></tr>"
        )
        if share:
            bar.append(
                f'<span style="width:{100.0 * share:.3f}%;background:{colors[action]}" '
                f'title="{action} {100.0 * share:.1f}%"></span>'
            )
    rows.append(f'<tr class="ens"><td class="l">total</td><td>{_int(total)}</td><td></td></tr>')
    hit = _num(sig.get("hit_rate"))
    cls = "" if hit is None else (' class="good"' if hit > 0.5 else ' class="bad"')
    hit_txt = (
        f"BUY/SELL hit rate <b{cls}>{_pct(hit, 2)}</b> over "
        f"{_int(sig.get('n_hits_scored'))} calls scored on up/down outcomes (coin: 50%)."
    )
    return (
        "<section>\n<h2>Signals</h2>\n"
        f'<div class="bar">{"".join(bar)}</div>\n'
        f'<table class="num">\n{chr(10).join(rows)}\n</table>\n<p>{hit_txt}</p>\n</section>\n'
    )


def _per_symbol_table(
    report: dict[str, Any], symbols: list[str], stages: list[str], colors: dict[str, str]
) -> str:
    per = _dict(report.get("per_symbol"))
    if not symbols:
        return ""
    two = ' rowspan="2"' if stages else ""
    head = "".join(
        f"<th{two}>{h}</th>"
        for h in ("symbol", "events", "signals", "n scored", "accuracy", "log-loss", "brier")
    )
    rows = [f"<tr>{head}"]
    if stages:
        rows[0] += f'<th colspan="{len(stages)}" class="c">final ensemble weight</th></tr>\n<tr>'
        rows[0] += "".join(f"<th>{_swatch(colors.get(s, _REF_COLOR))}{_e(s)}</th>" for s in stages)
    rows[0] += "</tr>"
    stage_dicts = _dict(report.get("stages"))
    for i, sym in enumerate(symbols):
        d = _dict(per.get(sym))
        ens = _dict(d.get("ensemble"))
        weights = "".join(
            f"<td>{_flt(_dict(_dict(stage_dicts.get(s)).get('final_weight')).get(sym), 3)}</td>"
            for s in stages
        )
        rows.append(
            f'<tr><td class="l"><a href="#sym-{i}">{_e(sym)}</a></td>'
            f"<td>{_int(d.get('events'))}</td><td>{_int(d.get('signals'))}</td>"
            f"<td>{_int(ens.get('n_scored'))}</td><td>{_pct(ens.get('accuracy'))}</td>"
            f"{_ll_cell(ens.get('log_loss'))}<td>{_flt(ens.get('brier'))}</td>{weights}</tr>"
        )
    return f'<table class="num">\n{chr(10).join(rows)}\n</table>\n'


# --------------------------------------------------------------------------- the page


def _positions(
    raw: dict[Any, Any], symbols: list[str], x_ranges: dict[str, tuple[float, float] | None]
) -> str:
    """Each symbol's net position after every fill as a step line over a zero line, on the
    time axis of the symbol's price chart; a symbol without fills gets a note."""
    positions = {str(k): v for k, v in raw.items()}
    names = symbols + [s for s in positions if s not in symbols]
    parts = [
        "<h3>Positions</h3>\n",
        '<p class="note">Net position per symbol in base units (positive long, negative '
        "short) after every fill, held until the next fill.</p>\n",
    ]
    if not names:
        parts.append(_nodata("no symbols in this run"))
    for sym in names:
        steps = _steps(positions.get(sym), x_ranges.get(sym))
        if not steps:
            parts.append(_nodata(f"{sym}: no fills"))
            continue
        parts.append(
            _chart(
                f"{sym} position over time",
                [_Series("position", _PRICE_COLOR, steps)],
                height=200,
                x_range=x_ranges.get(sym),
                refs=[_Ref(0.0, "flat (0)")],
            )
        )
    return "".join(parts)


def _paper(
    report: dict[str, Any],
    charts: dict[str, Any],
    symbols: list[str],
    x_ranges: dict[str, tuple[float, float] | None],
) -> str:
    """The paper account (``--paper``): its equity, the drawdown below the high-water mark and,
    when the charts carry them, each symbol's position over time."""
    paper = _dict(charts.get("paper"))
    if not paper:
        return ""
    raw_positions = paper.get("positions")
    positions = (
        _positions(raw_positions, symbols, x_ranges) if isinstance(raw_positions, dict) else ""
    )
    equity = _series(paper.get("equity"))
    high = -math.inf
    drawdown: list[Point] = []
    for t, v in equity:
        high = max(high, v)
        drawdown.append((t, (v / high - 1.0) if high > 0 else 0.0))
    p = _dict(report.get("paper"))
    note = (
        f"net {_flt(p.get('net_pnl'), 2)} after {_flt(p.get('fees'), 2)} of fees "
        f"(gross {_flt(p.get('gross_pnl'), 2)}); {_int(p.get('n_fills'))} fills, "
        f"{_int(p.get('n_round_trips'))} round trips; max drawdown "
        f"{_pct(p.get('max_drawdown'), 3)}"
    )
    return (
        "<section>\n<h2>Paper account</h2>\n"
        f'<p class="note">{_e(note)}</p>\n'
        + _chart("paper equity", [_Series("equity", _PRICE_COLOR, equity)], height=260)
        + _chart(
            "paper drawdown below the high-water mark",
            [_Series("drawdown", _SELL_COLOR, drawdown)],
            height=180,
            y_extent=(0.0, 0.0),
            pct=True,
        )
        + positions
        + "</section>\n"
    )


def render_html(report: dict[str, Any], charts: dict[str, Any]) -> str:
    """The backtest report as one self-contained HTML page (deterministic, escaped)."""
    report, charts = _dict(report), _dict(charts)
    colors = _colors(report, charts)

    sym_charts = {str(k): _dict(v) for k, v in _dict(charts.get("symbols")).items()}
    symbols = list(sym_charts)
    symbols += [s for s in map(str, _dict(report.get("per_symbol"))) if s not in sym_charts]
    stages = [str(s) for s in _dict(report.get("stages"))]

    cleaned: dict[str, dict[str, Any]] = {}
    for sym, raw in sym_charts.items():
        cleaned[sym] = {
            "price": _series(raw.get("price")),
            "buy": _series(raw.get("buy")),
            "sell": _series(raw.get("sell")),
            "weights": {str(k): _series(v) for k, v in _dict(raw.get("weights")).items()},
        }
    rolling = {str(k): _series(v) for k, v in _dict(charts.get("rolling_accuracy")).items()}
    # a paper run's fills, drawn on their own symbol's price chart (none at all without them)
    raw_fills = _dict(charts.get("paper")).get("fills")
    fills = (
        {str(k): _fills(v) for k, v in raw_fills.items()} if isinstance(raw_fills, dict) else None
    )

    all_series: list[list[Point]] = list(rolling.values())
    for cs in cleaned.values():
        all_series += [cs["price"], cs["buy"], cs["sell"], *cs["weights"].values()]

    parts = [_header(report, all_series), _headline(report), _scores(report, colors)]
    parts.append(_signals(report))

    parts.append("<section>\n<h2>Per symbol</h2>\n")
    if not symbols:
        parts.append(_nodata("no symbols in this run"))
    parts.append(_per_symbol_table(report, symbols, stages, colors))
    x_ranges: dict[str, tuple[float, float] | None] = {}  # per symbol, shared by its charts
    for i, sym in enumerate(symbols):
        parts.append(f'<h3 id="sym-{i}">{_e(sym)}</h3>\n')
        c = cleaned.get(sym)
        if c is None:
            parts.append(_nodata(f"{sym}: no chart data"))
            continue
        price, buy, sell = c["price"], c["buy"], c["sell"]
        weights: dict[str, list[Point]] = c["weights"]
        fill_buy, fill_sell = fills.get(sym, ([], [])) if fills is not None else ([], [])
        every = (price, buy, sell, fill_buy, fill_sell, *weights.values())
        stamps = [p[0] for s in every for p in (s[:1] + s[-1:])]
        x_range = x_ranges[sym] = (min(stamps), max(stamps)) if stamps else None
        fill_series = (
            [
                _Series("buy fill", _BUY_FILL_COLOR, fill_buy, kind="diamond"),
                _Series("sell fill", _SELL_FILL_COLOR, fill_sell, kind="square"),
            ]
            if fills is not None
            else []
        )
        parts.append(
            _chart(
                f"{sym} price with signals" + (" and paper fills" if fills is not None else ""),
                [
                    _Series("price", _PRICE_COLOR, price, width=1.2),
                    _Series("BUY", _BUY_COLOR, buy, kind="up"),
                    _Series("SELL", _SELL_COLOR, sell, kind="down"),
                    *fill_series,
                ],
                height=340,
                x_range=x_range,
            )
        )
        parts.append(
            _chart(
                f"{sym} ensemble weights over time",
                [_Series(n, colors.get(n, _REF_COLOR), pts) for n, pts in weights.items()],
                height=240,
                x_range=x_range,
                y_extent=(0.0, 1.0),
            )
        )
    parts.append("</section>\n")

    window = _num(charts.get("rolling_window"))
    what = f"the last {window:,.0f}" if window is not None else "recent"
    parts.append("<section>\n<h2>Rolling accuracy</h2>\n")
    parts.append(
        _chart(
            f"rolling accuracy over {what} scored up/down outcomes",
            [
                _Series(
                    n,
                    colors.get(n, _REF_COLOR),
                    pts,
                    width=2.4 if n == "ensemble" else 1.4,
                )
                for n, pts in rolling.items()
            ],
            height=320,
            refs=[_Ref(0.5, "coin (50%)")],
            pct=True,
        )
    )
    parts.append("</section>\n")
    parts.append(_calibration(report, charts, colors))
    parts.append(_paper(report, charts, symbols, x_ranges))

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>quorum backtest report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "".join(parts)
        + f'<div id="tip"></div>\n<script>{_JS}</script>\n</body>\n</html>\n'
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#111827;background:#f8fafc;margin:0 auto;max-width:1100px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;
 border-bottom:1px solid #e5e7eb;padding-bottom:4px}h3{font-size:15px;margin:22px 0 6px}
.meta,.note{color:#4b5563;margin:2px 0}.note{font-size:13px}.dim{color:#6b7280}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef2f7;
 padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f1f5f9;font-weight:600;font-size:12px;color:#374151}
td.l,th.l,tr:first-child>th:first-child{text-align:left}th.c{text-align:center}
tr.ens td{font-weight:600}
tr.coin td{color:#6b7280;font-style:italic}
.good{color:#15803d;font-weight:600}.bad{color:#b91c1c}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.bar{display:flex;height:14px;max-width:480px;border-radius:3px;overflow:hidden;margin:6px 0}
.nodata{color:#6b7280;font-style:italic;background:#fff;border:1px dashed #d1d5db;
 padding:10px 14px;border-radius:4px}
a{color:#1d4ed8;text-decoration:none}
svg.rel{display:inline-block;width:32%;min-width:260px;height:auto;background:#fff;
 border:1px solid #e5e7eb;border-radius:4px;margin:4px 0.5% 10px 0}
svg.chart{display:block;width:100%;height:auto;background:#fff;border:1px solid #e5e7eb;
 border-radius:4px;margin:8px 0 14px}
#tip{position:fixed;display:none;pointer-events:none;background:rgba(17,24,39,.92);color:#f9fafb;
 font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;padding:6px 8px;
 border-radius:4px;z-index:10;white-space:nowrap}
"""

# Hover read-out: a crosshair and, for each line, its value at the nearest point. Values are
# read back from the drawn polylines (0.1 px precision), so no data is embedded twice.
_JS = """
(function(){
var tip=document.getElementById('tip');
function pts(pl){if(!pl._p){var a=pl.getAttribute('points').trim().split(/[\\s,]+/).map(Number),
p=[];for(var i=0;i+1<a.length;i+=2)p.push([a[i],a[i+1]]);pl._p=p;}return pl._p;}
function near(p,x){var lo=0,hi=p.length-1;while(lo<hi){var m=(lo+hi)>>1;
if(p[m][0]<x)lo=m+1;else hi=m;}if(lo>0&&x-p[lo-1][0]<p[lo][0]-x)lo--;return p[lo];}
function line(text,color){var d=document.createElement('div');if(color){
var s=document.createElement('span');s.textContent='\\u25a0 ';s.style.color=color;
d.appendChild(s);}d.appendChild(document.createTextNode(text));tip.appendChild(d);}
document.querySelectorAll('svg.chart').forEach(function(svg){
var D=svg.dataset,x0=+D.x0,x1=+D.x1,px0=+D.px0,px1=+D.px1,y0=+D.y0,y1=+D.y1,
py0=+D.py0,py1=+D.py1,sc=+D.s,dg=+D.d,u=D.u,xh=svg.querySelector('.xh');
function hide(){tip.style.display='none';xh.style.visibility='hidden';}
svg.addEventListener('mouseleave',hide);
svg.addEventListener('mousemove',function(e){
var m=svg.getScreenCTM();if(!m)return;var q=svg.createSVGPoint();q.x=e.clientX;q.y=e.clientY;
q=q.matrixTransform(m.inverse());if(q.x<px0||q.x>px1||q.y<py1||q.y>py0){hide();return;}
xh.setAttribute('x1',q.x);xh.setAttribute('x2',q.x);xh.style.visibility='visible';
var t=x0+(q.x-px0)/(px1-px0)*(x1-x0);tip.textContent='';
line('\\u2248 '+new Date(t*1000).toISOString().slice(11,19)+' UTC');
svg.querySelectorAll('polyline[data-name]').forEach(function(pl){var p=pts(pl);if(!p.length)return;
var n=near(p,q.x);if(Math.abs(n[0]-q.x)>(px1-px0)/50)return;
var v=y0+(py0-n[1])/(py0-py1)*(y1-y0);
line(pl.dataset.name+': '+(v*sc).toFixed(dg)+u,pl.getAttribute('stroke'));});
tip.style.display='block';var r=tip.getBoundingClientRect();
tip.style.left=(e.clientX+16+r.width>innerWidth?e.clientX-16-r.width:e.clientX+16)+'px';
tip.style.top=(e.clientY+16+r.height>innerHeight?e.clientY-16-r.height:e.clientY+16)+'px';});
});
})();
"""
