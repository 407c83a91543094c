"""The pipeline in one process: every stage, then the voting agent, tick by tick.

The embedded backtest drives this directly; the Kafka driver runs the same :class:`Stage` and
:class:`Voter` objects in separate agents. Same code, same signals.
"""

from __future__ import annotations

from agents.stage import Stage
from agents.voting import Decision, Voter
from config.settings import PipelineConfig
from models.records import Tick
from models.state import MemoryStateStore, StateStore


class Pipeline:
    def __init__(self, cfg: PipelineConfig, store: StateStore | None = None) -> None:
        self.cfg = cfg
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self.stages = [Stage(s, cfg, self.store) for s in cfg.stages]
        self.voter = Voter(cfg, self.store)

    def process(self, tick: Tick) -> Decision | None:
        """Feed one validated tick; a decision comes back for trigger ticks."""
        votes = [stage.process(tick) for stage in self.stages]
        if votes[0] is None:
            return None
        return self.voter.process([v for v in votes if v is not None])
