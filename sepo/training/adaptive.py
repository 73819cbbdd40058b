"""Opponents that adapt to the agent during SEPO training: Kuhn's ``BestResponse`` (SPEC section 8).

A ``BestResponse`` in a training pool plays the exact best response to the
*current* model's behavioural table, recomputed every
``sepo.best_response_refresh_steps`` (k) steps:

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
  then are the step's best-response episodes played, bound to that table.
  A set the step's decisions never reached keeps the previous table's value
  (1/2 before any: no probe episodes are played in training).  A refresh
  step whose groups are all best-response groups (nothing else to measure
  on) plays a dedicated measuring episode per training-pool opponent,
  seeded by the step, which is not trained on.
- **Between refreshes** the best response stays bound to the last table,
  so for up to k − 1 steps it answers a slightly older model.

What the exploit penalty then means: ``BestResponse``'s expected
ū_opp − ū_agent is the bound table's NashConv (twice its exploitability),
so its groups' exploit penalty is a per-rollout estimate of how much the
agent's worst case wins, and lowering it moves the agent towards
equilibrium rather than towards a best response to a fixed pool.

Logged per step (``log_metrics``): ``best_response_refresh`` (1 at a
refresh, else 0), ``best_response_nash_conv`` (the bound table's NashConv:
the best response's expected advantage) and the table itself
(``best_response/table/<set>``), which is how a run resumed from a
checkpoint recovers the table in force (the Trainer restores its log
history from the checkpoint), so it plays what an uninterrupted run plays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sepo.games.protocol import Game, Strategy, adapts_to_agent
from sepo.rollout import EpisodeSpec, PlayedEpisode

TABLE_PREFIX = "best_response/table/"


class AdaptiveOpponents:
    """The adaptive opponents of one run and the agent's table they are bound to."""

    def __init__(self, game: Game, opponents: Mapping[str, Strategy], refresh_steps: int) -> None:
        self.names = tuple(name for name, strategy in opponents.items() if adapts_to_agent(strategy))
        self.audit = game.strategy_audit() if self.names else None
        if self.names and self.audit is None:
            raise ValueError(f"{game.name}: opponent {self.names[0]} responds to the agent's measured policy, "
                             "but the domain has no strategy audit to measure it")
        self.unbound = {name: opponents[name] for name in self.names}
        self.refresh_steps = refresh_steps
        self.agent_policy: dict[str, float] | None = None
        self.bound: dict[str, Strategy] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    def refresh_due(self, step: int) -> bool:
        """Whether the table is recomputed at ``step`` (0, k, 2k, ...; or when none is known)."""
        return step % self.refresh_steps == 0 or self.agent_policy is None

    def restore(self, log_history: Sequence[Mapping[str, Any]]) -> None:
        """The table in force at the last logged step (a resumed run), when not yet known."""
        if self.agent_policy is not None:
            return
        for entry in reversed(log_history):
            table = {key.removeprefix(TABLE_PREFIX): value for key, value in entry.items()
                     if key.startswith(TABLE_PREFIX)}
            if table:
                self._bind(table)
                return

    def refresh(self, policy, played: Sequence[PlayedEpisode]) -> None:
        """Measure the agent's table on ``played`` (the step's non-adaptive episodes) and bind to it."""
        from sepo.evaluation import scored

        records = [p.record for p in scored(policy, self.audit, played)]
        self._bind(self.audit.played_policy(records, {}, fallback=self.agent_policy))

    def _bind(self, agent_policy: Mapping[str, float]) -> None:
        self.agent_policy = dict(agent_policy)
        self.bound = {name: strategy.bind_to_agent(self.agent_policy) for name, strategy in self.unbound.items()}

    def spec(self, spec: EpisodeSpec) -> EpisodeSpec:
        """``spec`` with its opponent bound, when it is adaptive."""
        if spec.opponent.name not in self.bound:
            return spec
        return EpisodeSpec(spec.game, self.bound[spec.opponent.name], spec.pool, spec.seed)

    def is_adaptive(self, spec: EpisodeSpec) -> bool:
        return spec.opponent.name in self.names

    def log_metrics(self, refreshed: bool) -> dict[str, float]:
        """This step's row of the step log (see the module doc)."""
        strategy = next(iter(self.bound.values()))
        return {"best_response_refresh": float(refreshed),
                "best_response_nash_conv": float(strategy.expected_advantage()),
                **{f"{TABLE_PREFIX}{key}": value for key, value in self.agent_policy.items()}}
