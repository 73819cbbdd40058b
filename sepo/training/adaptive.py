"""Opponents that adapt to the agent during SEPO training: Kuhn's ``BestResponse`` (SPEC section 8).

A ``BestResponse`` in a training pool plays an exact best response to the
current model's behavioural table, measured every
``sepo.best_response_refresh_steps`` (k) steps: to the latest table, or,
with fictitious play, to one of every refresh's tables so far:

- **When.** At every step whose ``global_step`` (optimizer steps done
  before the step's rollouts) is a multiple of k: steps 0, k, 2k, ...  The
  first refresh is step 0, so before any update the target is the SFT
  model's own table.
- **From what.** The step's own rollouts, played by the model about to be
  updated: every episode of the step against a non-adaptive opponent is
  played first, its decisions are scored after the model's own replies
  (``Decision.probabilities``, ``sepo.policies.action_scores``: training
  rollouts do not log them, so a refresh step scores them, exactly as
  evaluation does) and measured with the domain's audit
  (``StrategyAudit.played_policy``, the measure evaluation reports).  Only
  then are the step's best-response episodes played, against the best
  responses bound to the tables measured so far.  A set the step's
  decisions never reached keeps the previous table's value (1/2 before
  any: no probe episodes are played in training).  A refresh
  step whose groups are all best-response groups (nothing else to measure
  on) plays a dedicated measuring episode per training-pool opponent,
  seeded by the step, which is not trained on.
- **Between refreshes** the tables stay as they are, so for up to k − 1
  steps the best response answers a slightly older model.
- **Which best responses play** (``sepo.best_response_mixture``).
  ``latest``: the best response to the latest refresh's table.  Trained
  against that alone the agent may chase the one response that beats its
  last table and overshoot, the next refresh answering the overshoot (from
  an earlier SFT model the ablation arm's J bluff went 0.16 -> 0.45,
  equilibrium's is 1/3).
  ``average`` is fictitious play: every refresh appends the best response
  to its table to the run's history, and each best-response episode plays
  one stored response, drawn uniformly by a generator seeded from the
  episode's own environment seed and the history's length
  (``derived_seed``), so a GRPO group (G episodes of one seed) meets one
  response, runs are bit-reproducible and a resumed run draws what an
  uninterrupted one draws.  The opponent is then the uniform mixture of the
  best responses to every table so far, which moves only by 1/n at the
  n-th refresh.  The ablation has an arm of each; their NashConv ranking
  changed with the SFT model (README, "Kuhn's exact best response"), so one seed does
  not separate them and ``latest`` stays the default.

What the exploit penalty then means: an episode's ū_opp − ū_agent against
the opponent played.  With ``latest`` its expectation is the latest table's
NashConv (twice its exploitability): a per-rollout estimate of how much the
agent's worst case wins.  With ``average`` it is the mixture's advantage,
the mean over stored responses of what each wins against the latest table
(``BestResponse.advantage_against``, ``sepo.exploitability.table_advantage``):
at most that NashConv, equal to it once every stored response still beats
the agent as much as the newest.  Either way lowering it moves the agent
towards equilibrium rather than towards a best response to a fixed pool.

Logged per step (``log_metrics``): ``best_response_refresh`` (1 at a
refresh, else 0), ``best_response_nash_conv`` (the latest table's NashConv:
the agent's measured exploitability, what the newest best response wins),
``best_response_advantage`` (the played opponent's exact expected
ū_opp − ū_agent against the latest table: the mixture's with ``average``,
the NashConv again with ``latest``), ``best_response_mixture_size`` (how
many best responses it draws from: 1 with ``latest``) and the latest table
itself (``best_response/table/<set>``).  The table is how a run resumed from
a checkpoint recovers its state (the Trainer restores its log history from
the checkpoint): ``restore`` reads the table of every logged refresh step,
in order, so the resumed run holds the same history of best responses and
plays what an uninterrupted run plays.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from sepo.config import BEST_RESPONSE_MIXTURES
from sepo.games.protocol import Game, Strategy, adapts_to_agent
from sepo.rollout import EpisodeSpec, PlayedEpisode
from sepo.training.groups import derived_seed

TABLE_PREFIX = "best_response/table/"


class AdaptiveOpponents:
    """The adaptive opponents of one run and the agent's tables they are bound to."""

    def __init__(self, game: Game, opponents: Mapping[str, Strategy], refresh_steps: int,
                 mixture: str = "latest") -> None:
        if mixture not in BEST_RESPONSE_MIXTURES:
            raise ValueError(f"best-response mixture {mixture!r} is not one of {', '.join(BEST_RESPONSE_MIXTURES)}")
        self.names = tuple(name for name, strategy in opponents.items() if adapts_to_agent(strategy))
        self.audit = game.strategy_audit() if self.names else None
        if self.names and self.audit is None:
            raise ValueError(f"{game.name}: opponent {self.names[0]} responds to the agent's measured policy, "
                             "but the domain has no strategy audit to measure it")
        self.unbound = {name: opponents[name] for name in self.names}
        if mixture == "average":
            for name, strategy in self.unbound.items():
                if not callable(getattr(strategy, "advantage_against", None)):
                    raise ValueError(f"{game.name}: opponent {name} cannot be mixed over refreshes "
                                     "(it has no advantage_against to value the mixture with)")
        self.refresh_steps = refresh_steps
        self.mixture = mixture
        #: the latest refresh's table (what the next refresh falls back to where it measures nothing)
        self.agent_policy: dict[str, float] | None = None
        #: every refresh's table, in order (the last is ``agent_policy``)
        self.tables: list[dict[str, float]] = []
        #: per adaptive opponent, the best responses its episodes draw from: the latest only, or every
        #: refresh's (``average``), in refresh order
        self.bound: dict[str, tuple[Strategy, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    def refresh_due(self, step: int) -> bool:
        """Whether the table is recomputed at ``step`` (0, k, 2k, ...; or when none is known)."""
        return step % self.refresh_steps == 0 or self.agent_policy is None

    def restore(self, log_history: Sequence[Mapping[str, Any]]) -> None:
        """The tables of a resumed run, when none is known yet: every logged refresh's, in order.

        A history whose table rows carry no refresh flag gives its last table.
        """
        if self.agent_policy is not None:
            return
        refreshed, last = [], None
        for entry in log_history:
            table = {key.removeprefix(TABLE_PREFIX): value for key, value in entry.items()
                     if key.startswith(TABLE_PREFIX)}
            if not table:
                continue
            last = table
            if entry.get("best_response_refresh") == 1.0:
                refreshed.append(table)
        for table in refreshed or ([last] if last is not None else []):
            self._bind(table)

    def refresh(self, policy, played: Sequence[PlayedEpisode]) -> None:
        """Measure the agent's table on ``played`` (the step's non-adaptive episodes) and bind to it."""
        from sepo.evaluation import scored

        records = [p.record for p in scored(policy, self.audit, played)]
        self._bind(self.audit.played_policy(records, {}, fallback=self.agent_policy))

    def _bind(self, agent_policy: Mapping[str, float]) -> None:
        self.agent_policy = dict(agent_policy)
        self.tables.append(self.agent_policy)
        for name, strategy in self.unbound.items():
            response = strategy.bind_to_agent(self.agent_policy)
            kept = self.bound.get(name, ()) if self.mixture == "average" else ()
            self.bound[name] = (*kept, response)

    def spec(self, spec: EpisodeSpec) -> EpisodeSpec:
        """``spec`` with its opponent bound, when it is adaptive: one of its best responses (module doc)."""
        responses = self.bound.get(spec.opponent.name)
        if responses is None:
            return spec
        return EpisodeSpec(spec.game, self.draw(responses, spec.seed), spec.pool, spec.seed)

    @staticmethod
    def draw(responses: Sequence[Strategy], seed: int) -> Strategy:
        """The response an episode of environment seed ``seed`` plays: uniform, a function of the seed alone."""
        if len(responses) == 1:
            return responses[0]
        rng = random.Random(derived_seed("sepo-best-response-mixture", seed, len(responses)))
        return responses[rng.randrange(len(responses))]

    def expected_advantage(self) -> float:
        """The played opponent's exact expected ū_opp − ū_agent against the latest table (module doc)."""
        responses = next(iter(self.bound.values()))
        if self.mixture == "latest":
            return float(responses[-1].expected_advantage())
        return sum(r.advantage_against(self.agent_policy) for r in responses) / len(responses)

    def log_metrics(self, refreshed: bool) -> dict[str, float]:
        """This step's row of the step log (see the module doc)."""
        responses = next(iter(self.bound.values()))
        return {"best_response_refresh": float(refreshed),
                "best_response_nash_conv": float(responses[-1].expected_advantage()),
                "best_response_advantage": self.expected_advantage(),
                "best_response_mixture_size": float(len(responses)),
                **{f"{TABLE_PREFIX}{key}": value for key, value in self.agent_policy.items()}}
