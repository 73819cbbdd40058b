"""The one protocol every domain follows.

A domain (``Game``) describes the rules of a single round (or hand) as a tiny
extensive-form game between two seats: seat 0 is the agent, seat 1 the
scripted opponent.  ``Episode`` strings ``rounds`` such rounds together, asks
the opponent for its moves whenever it is the opponent's turn and stops at
each decision of the agent.  Metrics, the rollout engine and the data
generator only ever talk to ``Episode`` and ``Game``; nothing outside
``sepo.games`` special-cases a domain.

Simultaneous-move games (IPD, auction, both negotiations) are played as "the
agent moves first, the opponent moves second without seeing it": the view a
seat receives is built by ``Game.view`` from that seat's own information, so
the opponent never learns the agent's current action or private information.

Randomness comes from three independent streams derived from the episode
seed (environment: deals and tie breaks; opponent; agent), so the same seed
gives the same deals and the same opponent dice whatever the agent does.
That is what makes a GRPO group's common random numbers common.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

AGENT = 0
OPPONENT = 1
POOLS = ("train", "exploit", "collusive", "shift")
#: the pools each measured quantity is taken over (SPEC sections 4 and 5): the one table that the
#: metrics, the SEPO reward, its training logs and the GRPO groups read.  An opponent is a
#: (pool, strategy) slot, so a quantity over two pools averages every slot of both.
QUANTITY_POOLS: Mapping[str, tuple[str, ...]] = {
    "payoff": ("train",),
    "exploit": ("exploit",),
    "collusion": ("collusive",),
    "externality": ("train", "exploit"),
    "robust": ("shift",),
    "nra": POOLS,
    "invalid_rate": POOLS,
}


def stream(seed: int, name: str) -> random.Random:
    """An independent, reproducible random stream for one purpose of one episode."""
    return random.Random(f"{seed}:{name}")


@dataclass(frozen=True)
class Move:
    """One action taken by one seat inside a round."""

    seat: int
    action: str


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one finished round, from the referee's point of view.

    ``private`` holds each seat's private information (JSON-able), ``public``
    the domain's public facts about the round (e.g. the auction's winner or a
    negotiation breakdown).  ``payoffs`` is (agent, opponent).
    """

    round: int
    moves: tuple[Move, ...]
    payoffs: tuple[float, float]
    private: tuple[Any, Any]
    public: Mapping[str, Any]

    def actions_of(self, seat: int) -> tuple[str, ...]:
        return tuple(m.action for m in self.moves if m.seat == seat)


@dataclass(frozen=True)
class SeatRound:
    """A past round as one seat remembers it: nothing it could not have seen."""

    round: int
    moves: tuple[tuple[bool, str], ...]  # (is_own_move, action) in order
    own_payoff: float
    own_private: Any
    public: Mapping[str, Any]
    revealed_other_private: Any = None  # e.g. the opponent's card at a Kuhn showdown

    @property
    def own_actions(self) -> tuple[str, ...]:
        return tuple(a for own, a in self.moves if own)

    @property
    def other_actions(self) -> tuple[str, ...]:
        return tuple(a for own, a in self.moves if not own)


@dataclass(frozen=True)
class SeatView:
    """Everything one seat knows at one of its decisions.

    Strategies and the natural-language state text are functions of a view
    only, which is how "opponents see only what their seat sees" is enforced.
    """

    game: str
    round: int  # 1-based
    rounds: int
    private: Any
    public: Mapping[str, Any]
    history: tuple[SeatRound, ...]
    legal_actions: tuple[str, ...]


class Strategy(Protocol):
    """A named scripted policy: a pure function of a seat's view and its dice."""

    name: str

    def act(self, view: SeatView, rng: random.Random) -> str: ...


class AdaptiveStrategy(Strategy, Protocol):
    """A strategy that responds to the agent's own measured policy (Kuhn's ``BestResponse``, SPEC section 8).

    As built from params it has nothing to respond to yet.  Evaluation and
    SEPO training measure the agent's policy with the domain's
    ``StrategyAudit.played_policy`` and play ``bind_to_agent(that)``, so they
    never ask which domain or strategy it is.
    """

    def bind_to_agent(self, agent_policy: Any) -> Strategy:
        """This strategy responding to ``agent_policy`` (what ``played_policy`` returned)."""

    def expected_advantage(self) -> float:
        """Its exact expected per-round ū_opp − ū_agent against the bound policy."""


def adapts_to_agent(strategy: Strategy) -> bool:
    """Whether ``strategy`` must be bound to the agent's measured policy before it plays."""
    return callable(getattr(strategy, "bind_to_agent", None))


@dataclass
class RoundState:
    """The referee's state inside the current round; domains subclass freely."""

    round: int
    private: tuple[Any, Any]
    public: dict[str, Any] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)


class Game(ABC):
    """Rules of one domain.  Subclasses implement the round-level hooks.

    Instances are immutable configuration (round count, payoff scale, ...);
    all mutable state lives in ``Episode`` and ``RoundState``.
    """

    name: ClassVar[str]
    #: every action keyword the parser may find in free text
    action_keywords: ClassVar[tuple[str, ...]]

    def __init__(self, rounds: int, max_payoff: float) -> None:
        self.rounds = rounds
        self.max_payoff = max_payoff

    @property
    def scale(self) -> float:
        """s = 3 / P, the payoff normalisation of SPEC section 2."""
        return 3.0 / self.max_payoff

    # -- episode and round structure ---------------------------------------
    def start_episode(self, rng: random.Random) -> dict[str, Any]:
        """Per-episode context drawn once (e.g. the item pool).  Default: none."""
        return {}

    @abstractmethod
    def start_round(self, context: Mapping[str, Any], round_no: int, rng: random.Random,
                    history: Sequence[RoundRecord]) -> RoundState:
        """Deal the round's private information."""

    @abstractmethod
    def to_move(self, state: RoundState) -> int | None:
        """The seat that acts next, or None when the round is over."""

    @abstractmethod
    def legal_actions(self, state: RoundState, seat: int) -> tuple[str, ...]:
        """Legal actions of ``seat`` (which must be the seat to move)."""

    @abstractmethod
    def finish_round(self, state: RoundState, rng: random.Random) -> RoundRecord:
        """Payoffs and public outcome of a round whose moves are complete."""

    @abstractmethod
    def view(self, context: Mapping[str, Any], state: RoundState, seat: int,
             history: Sequence[RoundRecord]) -> SeatView:
        """What ``seat`` knows now; must not leak the other seat's private info."""

    # -- natural-language interface -----------------------------------------
    @abstractmethod
    def rules_text(self) -> str:
        """The system prompt: rules, payoffs, answer format."""

    @abstractmethod
    def state_text(self, view: SeatView) -> str:
        """The user prompt at one decision of the agent."""

    def legal_actions_form(self, view: SeatView) -> str | None:
        """A compact form of a legal-action list too long to restate (``None``: list the actions).

        The demonstrators restate the legal actions right before they act
        (SPEC section 6); where a domain has dozens of them, its form (the
        ranges of an item demand) is what they restate instead.
        """
        return None

    # -- domain metrics (SPEC section 3) -------------------------------------
    @abstractmethod
    def collusion_flags(self, record: EpisodeRecord) -> list[bool]:
        """One flag per agent decision that counts for collusion: True when collusive."""

    @abstractmethod
    def externality_values(self, record: EpisodeRecord) -> list[float]:
        """One externality value in [0, 1] per round (0 for a zero-sum domain)."""

    # -- optional: a domain's own audit of the agent's strategy ---------------------
    def strategy_audit(self) -> StrategyAudit | None:
        """Numbers about how the agent plays beyond SPEC section 4's common metrics, or None.

        Kuhn poker has one (the exact exploitability of the played policy);
        evaluation and the report use whatever a domain returns here and never
        ask which domain it is, so a new domain with an audit needs no edits there.
        """
        return None


class StrategyAudit(Protocol):
    """A domain's audit of the agent's strategy, computed from the evaluation episodes.

    ``scores_played_actions``: evaluation logs, for every agent decision of a
    model policy, the probabilities of the legal actions after the agent's own
    reply (``Decision.probabilities``), which is what the audit reads.
    """

    title: str
    description: str
    #: the audit's scalar results, each reported with a bootstrap interval, in report order
    scalars: tuple[str, ...]
    labels: Mapping[str, str]
    scores_played_actions: bool

    def probe_episodes(self, records: Sequence[EpisodeRecord], replies: int,
                       seed: int) -> list[tuple[str, Strategy, int]]:
        """(what it probes, opponent, episode seed) of extra episodes the agent should play for the audit."""

    def unreached(self, probes: Mapping[str, Sequence[EpisodeRecord]]) -> dict[str, Any]:
        """What the probe episodes measured, per probed item (JSON-able, kept in the audit section)."""

    def summarise(self, records: Sequence[EpisodeRecord], unreached: Mapping[str, Any], *,
                  exact_strategy: Strategy | None, bootstrap_samples: int, confidence: float,
                  seed: int) -> dict[str, Any]:
        """The audit's JSON section: ``scalars`` {name: {value, ci_low, ci_high}} and its details.

        A function of the evaluation records and ``unreached`` alone, so it can
        be recomputed from the episode log and the section's own ``unreached``.
        """

    def scalar_samples(self, records: Sequence[EpisodeRecord], summary: Mapping[str, Any],
                       indices: Any) -> dict[str, Any]:
        """Each scalar recomputed on the bootstrap samples ``indices`` (``sepo.bootstrap.Strata`` order)."""

    def played_policy(self, records: Sequence[EpisodeRecord], unreached: Mapping[str, Any], *,
                      exact_strategy: Strategy | None = None, fallback: Any = None) -> Any:
        """The agent's policy as this audit measures it on ``records``: what an ``AdaptiveStrategy`` binds to.

        As ``summarise`` measures it: ``exact_strategy``'s own policy when it
        has one; ``unreached`` fills what ``records`` never reached
        (``unreached()``'s result); ``fallback`` is an earlier measurement for
        what neither has.
        """


@dataclass(frozen=True)
class Decision:
    """One decision of the agent: what it could do, what it said, what was played."""

    round: int
    legal_actions: tuple[str, ...]
    action: str
    reply: str
    valid: bool  # False when the reply did not parse and the fallback chose
    #: the policy's probabilities of the legal actions as it played them (a model's, after its own
    #: reply; see ``StrategyAudit``), when a strategy audit asked for them
    probabilities: Mapping[str, float] | None = None


@dataclass
class EpisodeRecord:
    """A finished (or running) episode: the unit the metrics consume."""

    game: str
    pool: str
    opponent: str
    seed: int
    rounds: list[RoundRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def agent_payoffs(self) -> list[float]:
        return [r.payoffs[AGENT] for r in self.rounds]

    def opponent_payoffs(self) -> list[float]:
        return [r.payoffs[OPPONENT] for r in self.rounds]


class Episode:
    """One episode between the agent and a scripted opponent.

    The episode always rests at a decision of the agent (or at the end):
    opponent moves and round settlements happen inside ``step``.
    """

    def __init__(self, game: Game, opponent: Strategy, seed: int, pool: str = "train") -> None:
        self.game = game
        self.opponent = opponent
        self.env_rng = stream(seed, "env")
        self.opponent_rng = stream(seed, "opponent")
        self.record = EpisodeRecord(game=game.name, pool=pool, opponent=opponent.name, seed=seed)
        self.context = game.start_episode(self.env_rng)
        self.record.context = dict(self.context)
        self._state: RoundState | None = None
        self._begin_round(1)

    # -- public API -------------------------------------------------------
    @property
    def is_terminal(self) -> bool:
        return self._state is None

    def agent_view(self) -> SeatView:
        assert self._state is not None, "episode is over"
        return self.game.view(self.context, self._state, AGENT, self.record.rounds)

    def legal_actions(self) -> tuple[str, ...]:
        assert self._state is not None, "episode is over"
        return self.game.legal_actions(self._state, AGENT)

    def step(self, action: str, reply: str | None = None, valid: bool = True) -> None:
        """Play the agent's action, then everything up to its next decision."""
        state = self._state
        if state is None:
            raise ValueError("episode is over")
        legal = self.game.legal_actions(state, AGENT)
        if action not in legal:
            raise ValueError(f"illegal action {action!r}; legal: {', '.join(legal)}")
        self.record.decisions.append(Decision(state.round, legal, action,
                                              reply if reply is not None else f"Action: {action}",
                                              valid))
        state.moves.append(Move(AGENT, action))
        self._advance()

    # -- internals --------------------------------------------------------
    def _begin_round(self, round_no: int) -> None:
        self._state = self.game.start_round(self.context, round_no, self.env_rng, self.record.rounds)
        self._advance()

    def _advance(self) -> None:
        """Let the opponent move and settle rounds until the agent must act."""
        while self._state is not None:
            seat = self.game.to_move(self._state)
            if seat == AGENT:
                return
            if seat == OPPONENT:
                view = self.game.view(self.context, self._state, OPPONENT, self.record.rounds)
                action = self.opponent.act(view, self.opponent_rng)
                if action not in view.legal_actions:
                    raise ValueError(f"opponent {self.opponent.name} played illegal {action!r}")
                self._state.moves.append(Move(OPPONENT, action))
                continue
            finished = self.game.finish_round(self._state, self.env_rng)
            self.record.rounds.append(finished)
            if finished.round >= self.game.rounds:
                self._state = None
            else:
                self._begin_round(finished.round + 1)


def seat_history(history: Sequence[RoundRecord], seat: int,
                 reveal: Any = None) -> tuple[SeatRound, ...]:
    """Past rounds as ``seat`` saw them.

    ``reveal(record) -> bool`` says whether the other seat's private
    information became public in that round (a Kuhn showdown); by default it
    never does.
    """
    other = 1 - seat
    out = []
    for rec in history:
        shown = rec.private[other] if reveal is not None and reveal(rec) else None
        out.append(SeatRound(
            round=rec.round,
            moves=tuple((m.seat == seat, m.action) for m in rec.moves),
            own_payoff=rec.payoffs[seat],
            own_private=rec.private[seat],
            public=rec.public,
            revealed_other_private=shown,
        ))
    return tuple(out)


def play_scripted_episode(game: Game, agent: Strategy, opponent: Strategy, seed: int,
                          pool: str = "train") -> EpisodeRecord:
    """Play one episode with a scripted agent (reference loop, used by tests and data)."""
    episode = Episode(game, opponent, seed, pool)
    agent_rng = stream(seed, "agent")
    while not episode.is_terminal:
        episode.step(agent.act(episode.agent_view(), agent_rng))
    return episode.record
