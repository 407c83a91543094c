"""The embedded driver of the paper trader: a :class:`agents.paper_session.PaperSession` fed by
the backtest, writing ``orders.jsonl`` (orders and denials), ``fills.jsonl`` and
``equity.jsonl`` (one sample per second of event time) as events happen.

The backtest gives each tick, then the signal the kernel made of it; the session's merger puts
them in the canonical order (by event time, then symbol), the same order the Kafka paper agent
applies, so both drivers make the same fills.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from agents.paper_session import PaperSession
from config.paper import PaperConfig
from models.orders import Fill

__all__ = ["FileSink", "open_session"]


class FileSink:
    """The session's records as JSON lines under ``out``."""

    def __init__(self, out: Path) -> None:
        self._files: list[IO[bytes]] = []
        # for report.html: each symbol's position after every fill, and the fills themselves
        self.positions: dict[str, list[list[float]]] = {}
        self.fills: dict[str, list[list[Any]]] = {}
        self._orders = self._open(out / "orders.jsonl")
        self._fills = self._open(out / "fills.jsonl")
        self._equity = self._open(out / "equity.jsonl")

    def _open(self, path: Path) -> IO[bytes]:
        f = path.open("wb")
        self._files.append(f)
        return f

    def order(self, record: dict[str, Any]) -> None:
        self._orders.write(orjson.dumps(record) + b"\n")

    def fill(self, fill: Fill) -> None:
        self._fills.write(orjson.dumps(fill) + b"\n")  # a Fill's fields, in order
        self.fills.setdefault(fill.symbol, []).append([fill.ts, fill.side, fill.price, fill.size])

    def position(self, record: dict[str, Any]) -> None:
        self.positions.setdefault(record["symbol"], []).append([record["ts"], record["size"]])

    def equity(self, ts: int, equity: float, cash: float) -> None:
        self._equity.write(orjson.dumps({"ts": ts, "equity": equity, "cash": cash}) + b"\n")

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()


def open_session(
    cfg: PaperConfig, triggers: tuple[str, ...], out: Path | None
) -> tuple[PaperSession, FileSink | None]:
    session = PaperSession(cfg, triggers)
    sink = FileSink(out) if out is not None else None
    if sink is not None:
        session.sink = sink
    return session, sink
