"""The kernel: feature stages, the join and the voting agent, the one piece of code both drivers
run. The embedded backtest and the fused Kafka worker call :meth:`Pipeline.process` per tick;
the split worker runs each stage alone (:meth:`Pipeline.vote`) and joins their votes before the
voter (:meth:`Pipeline.join`, :meth:`Pipeline.expire`). Same objects, same order, same signals.

The kernel never reads a clock, Kafka or Redis: event time comes from ticks, wall time for the
join's timeout is passed in by the driver, and state goes through a :class:`StateStore`.
Kafka positions are driver metadata and live in the driver, never in these states.
"""

from __future__ import annotations

from agents.join import VoteJoin
from agents.stage import Stage
from agents.voting import Decision, Voter
from config.settings import PipelineConfig
from models.records import Tick, Vote
from models.state import MemoryStateStore, StateStore


class Pipeline:
    """Every stage, then the voter; or, split, one stage at a time and the join."""

    def __init__(
        self,
        cfg: PipelineConfig,
        store: StateStore | None = None,
        *,
        join_timeout_s: float = 10.0,
        max_waiting: int = 100_000,
    ) -> None:
        self.cfg = cfg
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self.stages = [Stage(s, cfg, self.store) for s in cfg.stages]
        self.stage_names = tuple(s.name for s in self.stages)
        self.voter = Voter(cfg, self.store)
        self._join: VoteJoin | None = None
        self._join_timeout_s = join_timeout_s
        self._max_waiting = max_waiting

    # --- fused: one call per tick ------------------------------------------------------------

    def process(self, tick: Tick) -> Decision | None:
        """Feed one validated tick; a decision comes back for trigger ticks."""
        votes = [stage.process(tick) for stage in self.stages]
        if votes[0] is None:
            return None
        return self.voter.process([v for v in votes if v is not None])

    def load(self, symbol: str) -> None:
        """Load (or create) every state of ``symbol`` now, before any of it changes: a driver
        calls this first so a store failure leaves nothing half applied."""
        for stage in self.stages:
            stage.state(symbol)
        self.voter.state(symbol)
        if self._join is not None:
            self._join.state(symbol)

    # --- split: stages apart, joined before the voter ---------------------------------------------

    @property
    def joiner(self) -> VoteJoin:
        """The join of the split topology (created on first use: the fused path has none)."""
        if self._join is None:
            self._join = VoteJoin(
                self.stage_names, self._join_timeout_s, self.store, max_waiting=self._max_waiting
            )
        return self._join

    def vote(self, stage: int, tick: Tick) -> Vote | None:
        """Feed one tick to one stage alone (a split stage agent); its vote for trigger ticks."""
        return self.stages[stage].process(tick)

    def load_join(self, symbol: str) -> None:
        """Load the join's and the voter's state of ``symbol`` (see :meth:`load`)."""
        self.joiner.state(symbol)
        self.voter.state(symbol)

    def join(self, vote: Vote, now: float) -> list[Decision]:
        """Take one stage's vote; decide every tick it completes, in tick order."""
        return [self.voter.process(votes) for votes in self.joiner.add(vote, now)]

    def expire(self, now: float) -> list[Decision]:
        """Decide the ticks whose missing stages have been silent for the join's timeout."""
        if self._join is None:
            return []
        return [self.voter.process(votes) for votes in self._join.expire(now)]

    # --- lifecycle -------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop live state (after a rebalance): the next tick reloads it from the store."""
        for stage in self.stages:
            stage.forget()
        self.voter.forget()
        if self._join is not None:
            self._join.forget()
