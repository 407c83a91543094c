"""Unit tests need no services and must be quick: each gets a 60 s timeout unless it sets one."""

from __future__ import annotations

import pytest

UNIT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))
