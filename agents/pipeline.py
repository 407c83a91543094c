"""The kernel: feature stages, the join and the voting agent, the one piece of code both drivers
run. The embedded backtest and the fused Kafka worker call :meth:`Pipeline.process` per tick;
the split worker runs each stage alone (:meth:`Pipeline.vote`) and joins their votes before the
voter (:meth:`Pipeline.join`, :meth:`Pipeline.expire`). Same objects, same order, same signals.

The kernel never reads a clock, Kafka or Redis: event time comes from ticks, wall time for the
join's timeout is passed in by the driver, and state goes through a :class:`StateStore`.
Kafka positions are driver metadata and live in the driver, never in these states.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.join import VoteJoin
from agents.stage import Stage, StageState
from agents.voting import Decision, Voter
from config.settings import PipelineConfig
from models.labels import Labeler
from models.records import Label, ModelEvent, Outcome, Tick, Vote
from models.state import MemoryStateStore, StateStore, state_key

#: State owner of the fused path's shared labels (one labeler per symbol for every stage).
LABELS = "labels"


@dataclass(slots=True)
class _Book:
    """One symbol's live states on the fused path (each is saved under its own key)."""

    labels: Labeler
    stages: list[StageState]  # outcomes for the next trigger wait in the first one's unsent


class Pipeline:
    """Every stage, then the voter; or, split, one stage at a time and the join.

    Fused, the stages share one labeler per symbol: every stage sees the same ticks, so their
    labels are the same, and computing them once per tick instead of once per stage is most
    of the fused path's saving. Split, each stage labels its own ticks (it runs alone); the
    labels agree, and the unit and integration parity tests hold the two paths together.
    """

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
        #: model events (drift alarms, resets) not yet taken by the driver
        self.events: list[ModelEvent] = []
        self.stages = [Stage(s, cfg, self.store, self.events) for s in cfg.stages]
        self.stage_names = tuple(s.name for s in self.stages)
        self.voter = Voter(cfg, self.store)
        self._join: VoteJoin | None = None
        self._join_timeout_s = join_timeout_s
        self._max_waiting = max_waiting
        self._triggers = frozenset(cfg.trigger)
        # the shared labeler keeps the tightest of the stages' bounds (equal by default)
        self._max_pending = min(s.max_pending for s in cfg.stages)
        self._books: dict[str, _Book] = {}

    # --- fused: one call per tick ------------------------------------------------------------

    def process(self, tick: Tick) -> Decision | None:
        """Feed one validated tick; a decision comes back for trigger ticks.

        Per stage, the same steps as :meth:`Stage.process`: learn what resolved (labels from
        the reference price at the deadline, before this tick is applied), apply the tick,
        and on a trigger predict and hold the example until its label exists.
        """
        book = self._books.get(tick.symbol) or self.load(tick.symbol)
        labels = book.labels
        states = book.stages
        queue = labels.pending
        if queue and queue[0].deadline < tick.ts:  # cheap test first: most ticks resolve nothing
            stages = self.stages
            unsent = states[0].unsent
            for pending, label in labels.resolve(tick.ts):
                unsent.append(Outcome(pending.seq, label))
                if label is not Label.FLAT:
                    up = label is Label.UP
                    for stage, st, example in zip(stages, states, pending.payload, strict=True):
                        stage.learn(st, example, up)
                        if st.drift is not None:
                            stage.watch(st, tick.symbol, pending.deadline, example, label, tick.ts)
        ref = labels.ref
        ref.update(tick)
        price = ref.value
        for st in states:
            st.seq += 1
            st.extractor.update(tick, price)
        if tick.kind not in self._triggers:
            return None
        seq = states[0].seq
        examples = []
        votes: list[tuple[str, str, int, float | None, str | None]] = []
        for stage, st in zip(self.stages, states, strict=True):
            example = stage.predict(st)
            examples.append(example)
            if st.drift is None:
                votes.append((stage.name, stage.model_id, st.learned, example[2], None))
            else:
                p_up = None if st.drift.muted else example[2]
                votes.append((stage.name, stage.model_id, st.learned, p_up, st.drift_mark()))
        labels.add(seq, tick.ts, tuple(examples))
        unsent = states[0].unsent
        outcomes = [(o.seq, o.label) for o in unsent]
        unsent.clear()
        return self.voter.decide(tick.symbol, seq, tick.ts, votes, outcomes)

    def load(self, symbol: str) -> _Book:
        """Load (or create) every state of ``symbol`` now, before any of it changes: a driver
        calls this first so a store failure leaves nothing half applied."""
        book = self._books.get(symbol)
        if book is not None:
            return book
        key = state_key(LABELS, symbol)
        labels = self.store.get(key)
        states = [stage.state(symbol) for stage in self.stages]
        self.voter.state(symbol)
        if labels is None:
            labels = Labeler(self.cfg.horizon_ns, self.cfg.dead_band_bps, self._max_pending)
            self.store.put(key, labels)
        book = _Book(labels, states)
        self._books[symbol] = book
        return book

    def loaded(self, symbol: str) -> bool:
        """Whether every fused-path state of ``symbol`` is live (no store access needed)."""
        return symbol in self._books

    def labels(self, symbol: str) -> Labeler:
        """The fused path's shared labeler of ``symbol`` (pending and dropped labels)."""
        return self.load(symbol).labels

    def take_events(self) -> list[ModelEvent]:
        """The model events since the last call (the driver audits them), oldest first."""
        if not self.events:
            return []
        out = list(self.events)
        self.events.clear()
        return out

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

    def stalled(self, by: float) -> None:
        """The driver did not run for ``by`` seconds: that time does not count as the stages'
        silence (see :meth:`VoteJoin.shift`)."""
        if self._join is not None:
            self._join.shift(by)

    def expire(self, now: float) -> list[Decision]:
        """Decide the ticks whose missing stages have been silent for the join's timeout."""
        if self._join is None:
            return []
        return [self.voter.process(votes) for votes in self._join.expire(now)]

    # --- lifecycle -------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop live state (after a rebalance): the next tick reloads it from the store."""
        self._books.clear()
        for stage in self.stages:
            stage.forget()
        self.voter.forget()
        if self._join is not None:
            self._join.forget()
