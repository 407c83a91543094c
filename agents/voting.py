"""The voting agent: joins the stages' votes for a tick into one explained signal.

Weights are learned online from the outcomes the stages report, per symbol, by the combiner
``voting.method`` names (:mod:`models.ensemble`: a log-odds stack or Hedge). A quorum of
voting stages is required, and a confidence threshold on the ensemble's P(up) turns it into
BUY / SELL; anything else is HOLD.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from config.settings import PipelineConfig, VotingConfig
from models.ensemble import Combiner, HedgeWeights, StackWeights
from models.records import Action, Label, Signal, StageVote, Vote
from models.state import MemoryStateStore, StateStore, state_key

VOTER = "voting"


@dataclass(frozen=True, slots=True)
class Scored:
    """A realised up/down outcome with what the ensemble and each stage had predicted."""

    symbol: str
    seq: int
    ts: int
    up: bool
    action: Action
    p_ensemble: float
    p_stages: dict[str, float | None]


@dataclass
class VoterState:
    weights: Combiner
    pending: OrderedDict[int, tuple[int, Action, float, dict[str, float | None]]] = field(
        default_factory=OrderedDict
    )
    flats: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    signal: Signal
    scored: tuple[Scored, ...]


def signal_id(config_hash: str, symbol: str, seq: int, ts: int) -> str:
    """Deterministic: the same input and config always give the same id."""
    return hashlib.sha256(f"{config_hash}|{symbol}|{seq}|{ts}".encode()).hexdigest()[:32]


class Voter:
    def __init__(self, cfg: PipelineConfig, store: StateStore | None = None) -> None:
        self.cfg = cfg.voting
        self.stage_names = tuple(s.name for s in cfg.stages)
        self.horizon_ns = cfg.horizon_ns
        self.config_hash = cfg.config_hash()
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self._live: dict[str, VoterState] = {}

    def state(self, symbol: str) -> VoterState:
        st = self._live.get(symbol)
        if st is None:
            key = state_key(VOTER, symbol)
            st = self.store.get(key)
            if st is None:
                st = VoterState(self.new_combiner())
                self.store.put(key, st)
            self._live[symbol] = st
        return st

    def new_combiner(self) -> Combiner:
        """Fresh, equal weights for one symbol, of the configured method."""
        c = self.cfg
        if c.method == "hedge":
            return HedgeWeights.uniform(self.stage_names, c.learning_rate, c.share, self.horizon_ns)
        return StackWeights.uniform(self.stage_names, c.learning_rate, c.l2, self.horizon_ns)

    def forget(self) -> None:
        """Drop live state (after a rebalance): the next vote reloads it from the store."""
        self._live.clear()

    def process(self, votes: Sequence[Vote]) -> Decision:
        """Learn from the outcomes the votes carry, then combine the votes into a signal.

        ``votes`` are for one tick (the split topology's join releases them); stages absent
        from it are reported as missing.
        """
        first = votes[0]
        outcomes: dict[int, Label] = {}
        for v in votes:
            for o in v.outcomes:
                outcomes[o.seq] = o.label
        names = self.stage_names
        if len(votes) == len(names) and all(
            v.stage == n for v, n in zip(votes, names, strict=True)
        ):  # the usual case: every stage voted, in config order
            ordered: Sequence[Vote] = votes
            missing: tuple[str, ...] = ()
        else:
            by_stage = {v.stage: v for v in votes}
            ordered = [by_stage[n] for n in names if n in by_stage]
            missing = tuple(n for n in names if n not in by_stage)
        return self.decide(
            first.symbol,
            first.seq,
            first.ts,
            [(v.stage, v.model, v.version, v.p_up, v.drift) for v in ordered],
            sorted(outcomes.items()),
            missing,
        )

    def decide(
        self,
        symbol: str,
        seq: int,
        ts: int,
        votes: Sequence[tuple[str, str, int, float | None, str | None]],
        outcomes: Sequence[tuple[int, Label]],
        missing: tuple[str, ...] = (),
    ) -> Decision:
        """The voter's one code path, for both topologies: learn from ``outcomes`` (seq order),
        then combine ``votes`` — (stage, model id, version, P(up), drift) in config order — into an
        explained signal. The fused kernel calls it directly, without building Vote records.
        """
        st = self._live.get(symbol) or self.state(symbol)
        scored = self._learn(st, symbol, ts, outcomes) if outcomes else ()

        probs = {v[0]: v[3] for v in votes if v[3] is not None}
        quorum_met = len(probs) >= self.cfg.quorum
        p_up = st.weights.combine(probs) if quorum_met else 0.5
        thr = self.cfg.threshold
        if quorum_met and p_up >= thr:
            action = Action.BUY
        elif quorum_met and p_up <= 1.0 - thr:
            action = Action.SELL
        else:
            action = Action.HOLD

        st.pending[seq] = (ts, action, p_up, {v[0]: v[3] for v in votes})
        if len(st.pending) > self.cfg.max_pending:
            st.pending.popitem(last=False)
            st.dropped += 1

        weights = st.weights.weights
        receipt = tuple(
            StageVote(name, model, version, p, weights[name], drift)
            for name, model, version, p, drift in votes
        )
        signal = Signal(
            id=signal_id(self.config_hash, symbol, seq, ts),
            symbol=symbol,
            seq=seq,
            ts=ts,
            horizon_ns=self.horizon_ns,
            action=action,
            p_up=p_up,
            quorum_met=quorum_met,
            stages=receipt,
            missing=missing,
            config_hash=self.config_hash,
        )
        return Decision(signal, scored)

    @staticmethod
    def _learn(
        st: VoterState, symbol: str, now: int, outcomes: Sequence[tuple[int, Label]]
    ) -> tuple[Scored, ...]:
        scored: list[Scored] = []
        batch: list[tuple[dict[str, float | None], bool]] = []
        pending = st.pending
        for seq, label in outcomes:
            entry = pending.pop(seq, None)
            if entry is None:
                continue  # already applied (re-delivery) or dropped
            if label is Label.FLAT:
                st.flats += 1
                continue
            ts, action, p_ens, p_stages = entry
            up = label is Label.UP
            batch.append((p_stages, up))
            scored.append(Scored(symbol, seq, ts, up, action, p_ens, p_stages))
        st.weights.update_many(batch, now)
        return tuple(scored)


def rederive(stages: Sequence[StageVote], cfg: VotingConfig) -> tuple[float, bool, Action]:
    """(P(up), quorum met, action) of a signal from its receipt alone: the stages' votes and
    weights, pooled by the same combiner the voter used (so the same bits), then the quorum
    and the threshold. ``quorum explain`` checks a recorded signal against it."""
    weights = {v.name: v.weight for v in stages}
    combiner: Combiner = (
        StackWeights(0.0, 0.0, 1, weights)
        if cfg.method == "stack"
        else HedgeWeights(0.0, 0.0, weights)
    )
    probs = {v.name: v.p_up for v in stages if v.p_up is not None}
    quorum_met = len(probs) >= cfg.quorum
    p_up = combiner.combine(probs) if quorum_met else 0.5
    if quorum_met and p_up >= cfg.threshold:
        return p_up, True, Action.BUY
    if quorum_met and p_up <= 1.0 - cfg.threshold:
        return p_up, True, Action.SELL
    return p_up, quorum_met, Action.HOLD
