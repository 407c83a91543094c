"""One kernel, two drivers: the split topology (stages apart, votes joined) decides exactly what
the fused one does, whatever the interleaving of the stages' votes; a store failure while
loading leaves nothing half applied."""

from __future__ import annotations

import random
from typing import Any

import pytest

from agents.pipeline import Pipeline
from config.settings import PipelineConfig, load_config
from models.records import Signal, Tick, Vote
from models.state import MemoryStateStore
from streams.readers import read_ticks
from tests.conftest import SAMPLE_FILES


@pytest.fixture(scope="module")
def ticks() -> list[Tick]:
    return list(read_ticks(SAMPLE_FILES))[:6000]


def fused(ticks: list[Tick], cfg: PipelineConfig | None = None) -> list[Signal]:
    kernel = Pipeline(cfg or load_config())
    return [d.signal for t in ticks if (d := kernel.process(t)) is not None]


def split(ticks: list[Tick], seed: int, cfg: PipelineConfig | None = None) -> list[Signal]:
    """Each stage runs alone; its votes reach the join late by a random number of ticks,
    per stage in order (as on one partition of the votes topic), the stages interleaved."""
    kernel = Pipeline(cfg or load_config(), join_timeout_s=1e9)
    rng = random.Random(seed)
    queues: list[list[Vote]] = [[] for _ in kernel.stages]
    out: list[Signal] = []

    def deliver(i: int, n: int) -> None:
        for vote in queues[i][:n]:
            out.extend(d.signal for d in kernel.join(vote, 0.0))
        del queues[i][:n]

    for tick in ticks:
        for i in range(len(kernel.stages)):
            vote = kernel.vote(i, tick)
            if vote is not None:
                queues[i].append(vote)
        i = rng.randrange(len(queues))
        deliver(i, rng.randrange(len(queues[i]) + 1))
    for i in range(len(queues)):
        deliver(i, len(queues[i]))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_split_stages_joined_in_any_order_decide_exactly_like_fused(
    ticks: list[Tick], seed: int
) -> None:
    # catches: a join that releases out of tick order or before every stage voted, a voter
    # fed votes in arrival order rather than config order, or split stages sharing state
    expected = fused(ticks)
    assert len(expected) > 500
    assert len({s.p_up for s in expected}) > 300  # the weights and votes really move
    assert split(ticks, seed) == expected


class FlakyStore(MemoryStateStore):
    """Refuses reads while ``down`` (like Redis going away), else a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def get(self, key: str) -> Any | None:
        if self.down:
            raise ConnectionError("refused")
        return super().get(key)


def test_load_fails_before_anything_changes_so_a_retry_is_exact(ticks: list[Tick]) -> None:
    # catches: a driver that applies a tick to some stages, fails loading the next, and
    # applies it again on retry (the first stages would count the tick twice)
    store = FlakyStore()
    kernel = Pipeline(load_config(), store)
    expected = fused(ticks)
    got: list[Signal] = []
    for n, tick in enumerate(ticks):
        if n % 997 == 0:
            kernel.forget()  # a rebalance: the next tick reloads every state
            store.down = True
            with pytest.raises(ConnectionError):
                kernel.load(tick.symbol)
            store.down = False
        kernel.load(tick.symbol)
        d = kernel.process(tick)
        if d is not None:
            got.append(d.signal)
    assert got == expected


def test_the_fused_path_has_no_join(ticks: list[Tick]) -> None:
    # catches: the fused topology paying for the join (votes held, state saved) it never needs
    kernel = Pipeline(load_config())
    for t in ticks[:500]:
        kernel.process(t)
    assert kernel.expire(1e12) == []
    assert not any(k.startswith("join/") for k in list(kernel.store.keys()))
