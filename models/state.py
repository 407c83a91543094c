"""The state-store seam: where stages and the voting agent keep their per-symbol state.

The embedded backtest keeps live objects in memory; a Redis store (later) serialises the same
objects. Logic only ever talks to :class:`StateStore`.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Protocol

# Modules renamed since state was first saved: blobs written before keep loading.
_MOVED = {"streams.records": "models.records"}


class StateStore(Protocol):
    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def keys(self) -> list[str]: ...


class MemoryStateStore:
    """Live objects in a dict: no serialisation cost, for the embedded backtest and tests."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value

    def keys(self) -> list[str]:
        return sorted(self._data)


def state_key(owner: str, symbol: str) -> str:
    return f"{owner}/{symbol}"


def dumps_state(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED.get(module, module), name)


def loads_state(blob: bytes) -> Any:
    """Unpickle trusted state only: callers must have verified where ``blob`` came from.

    Records moved from ``streams.records`` to ``models.records``; saved state naming the old
    module still loads.
    """
    return _Unpickler(io.BytesIO(blob)).load()
