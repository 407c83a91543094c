"""Shared fixtures: real recorded ticks (tests/fixtures) and small handmade tick lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.records import Quote, Tick, Trade

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_FILES = [FIXTURES / "btcusdt_head.gz", FIXTURES / "ethusdt_head.gz"]
S = 1_000_000_000  # one second in ns


@pytest.fixture
def sample_files() -> list[Path]:
    return list(SAMPLE_FILES)


def handmade_ticks(
    n: int = 400, symbol: str = "TEST", start: int = 1_700_000_000 * S
) -> list[Tick]:
    """A deterministic zig-zag market: a quote and a trade every 250 ms."""
    out: list[Tick] = []
    mid = 100.0
    for i in range(n):
        ts = start + i * S // 4
        step = 0.01 if (i // 7) % 2 == 0 else -0.01
        mid = round(mid + step, 2)
        out.append(Quote(symbol, ts, mid - 0.005, mid + 0.005, 1.0 + i % 3, 2.0 - i % 2))
        side = "buy" if step > 0 else "sell"
        out.append(Trade(symbol, ts + 1, mid + (0.005 if side == "buy" else -0.005), 0.5, side))
    return out
