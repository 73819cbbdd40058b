"""Kuhn poker's strategy audit: the exact exploitability of the policy the agent plays (SPEC section 4).

The agent's behavioural policy is a table of P(BET or CALL) at the 12
information sets (``sepo.games.kuhn``).  Which table:

- a scripted strategy with ``policy_table()`` keeps its exact table;
- any other agent is measured on the decisions it took in the evaluation
  episodes: a set's probability is the mean, over every decision at that set
  (any hand, any pool), of the agent's probability of the aggressive action
  as it played it, ``Decision.probabilities`` (for a model: its probabilities
  of the legal actions after its own reply up to the final ``Action: ``, so
  the reasoning that preceded the action is kept; see
  ``sepo.policies.action_scores``).  A decision without probabilities counts
  as the action it played (a scripted agent's empirical frequency, or a
  model reply without an ``Action:`` line, which the constrained fallback
  decided).
- a set no evaluation decision reached is measured on probe episodes:
  ``probe_episodes`` asks for N episodes (``eval.unreached_infoset_replies``)
  whose deals give the agent that card in hand 1 (first-mover sets) or hand 2
  (second-mover sets) and whose opponent steers the betting to the set; the
  agent plays them with its own sampling, so each probe decision is one
  sampled reply at that set, scored like the evaluation's.  A set even the
  probes never reach (the agent never checks that card, so ``Xpb`` cannot
  arise) has no bearing on the agent's value and is set to 1/2.

NashConv and exploitability are exact for a table (OpenSpiel's best
responses).  Their intervals, and those of the J-bluff / Q-call / K-bet
frequencies, come from the episode bootstrap of ``sepo.bootstrap``: each
sample's table is recomputed from the resampled episodes (probe values held
fixed), so two rows on the same seeds can be compared with paired samples.

``played_policy`` is the same table as a dict: what a ``BestResponse``
opponent is bound to (``sepo.games.protocol.AdaptiveStrategy``).  The
summary of a row that played one also reports, beside NashConv, the exact
NashConv of the table the best response was bound to and the exploit-pool
advantage it actually won (``best_response_section``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from sepo.bootstrap import Strata, check_settings, interval
from sepo.games.kuhn import (
    ACTION_LETTER,
    AGGRESSIVE_ACTIONS,
    BET,
    CALL,
    CHECK,
    EQUILIBRIUM_ALPHA,
    FIRST_MOVER_BETTINGS,
    INFOSETS,
    aggressive_action,
)
from sepo.games.protocol import AGENT, EpisodeRecord, Game, SeatView, Strategy, stream

UNREACHABLE_PROBABILITY = 0.5
FREQUENCY_LABELS = {"j_bluff": "J bluff-bet", "q_call": "Q call", "k_bet": "K bet"}
_SLOT = {key: i for i, key in enumerate(INFOSETS)}


def decision_infosets(record: EpisodeRecord) -> list[str]:
    """The information set (card + betting so far) of each of the agent's decisions, in order."""
    rounds = {r.round: r for r in record.rounds}
    seen: dict[int, int] = {}
    out = []
    for decision in record.decisions:
        hand = rounds[decision.round]
        k = seen.get(decision.round, 0)
        seen[decision.round] = k + 1
        agent_moves = [i for i, m in enumerate(hand.moves) if m.seat == AGENT]
        before = hand.moves[:agent_moves[k]]
        betting = "".join(ACTION_LETTER[m.action] for m in before)
        out.append(hand.private[AGENT] + betting)
    return out


def aggressive_probability(decision) -> float:
    """P(BET or CALL) of one decision as played: its logged probabilities, else the action it took."""
    if decision.probabilities:
        return float(decision.probabilities[aggressive_action(decision.legal_actions)])
    return 1.0 if decision.action in AGGRESSIVE_ACTIONS else 0.0


def episode_rows(records: Sequence[EpisodeRecord]) -> np.ndarray:
    """Per episode, 24 sums: Σ P(aggressive) at each information set, then the decision count there."""
    rows = np.zeros((len(records), 2 * len(INFOSETS)))
    for e, record in enumerate(records):
        for infoset, decision in zip(decision_infosets(record), record.decisions, strict=True):
            rows[e, _SLOT[infoset]] += aggressive_probability(decision)
            rows[e, len(INFOSETS) + _SLOT[infoset]] += 1.0
    return rows


def tables(totals: np.ndarray, fill: Mapping[str, float]) -> np.ndarray:
    """Behavioural tables (samples × 12) from summed rows (samples × 24); unreached sets from ``fill``."""
    sums, counts = totals[:, :len(INFOSETS)], totals[:, len(INFOSETS):]
    default = np.array([fill.get(key, UNREACHABLE_PROBABILITY) for key in INFOSETS])
    return np.where(counts > 0, sums / np.maximum(counts, 1), default)


def table_values(table: np.ndarray) -> dict[str, float]:
    """NashConv, exploitability and the key frequencies of one table (a row of ``tables``)."""
    from sepo.exploitability import nash_conv, strategy_frequencies

    as_dict = dict(zip(INFOSETS, table.tolist(), strict=True))
    value = nash_conv(as_dict)
    return {"nash_conv": value, "exploitability": value / 2, **strategy_frequencies(as_dict)}


def _values_of_tables(table_rows: np.ndarray) -> dict[str, np.ndarray]:
    values = [table_values(row) for row in table_rows]
    return {name: np.array([v[name] for v in values]) for name in values[0]}


@dataclass(frozen=True)
class _ProbeOpponent:
    """Steers a hand to one information set: bets or checks as first mover, bets after the agent's check."""

    target_betting: str
    name: str = "probe"

    def act(self, view: SeatView, rng: random.Random) -> str:
        betting = view.public["betting"]
        if CALL in view.legal_actions:
            return CALL
        if betting == "":  # the opponent opens (hand 2): the set is "p" or "b"
            return BET if self.target_betting == "b" else CHECK
        return BET if self.target_betting == "pb" else CHECK  # the agent checked


def _probe_seeds(game: Game, card: str, hand: int, count: int, seed: int, label: str) -> list[int]:
    """Episode seeds whose deal gives the agent ``card`` in ``hand`` (the engine's own dealing)."""
    seeds = []
    index = 0
    while len(seeds) < count:
        candidate = int.from_bytes(hashlib.sha256(f"probe/{seed}/{label}/{index}".encode()).digest()[:8],
                                   "big") >> 1
        index += 1
        rng = stream(candidate, "env")
        context = game.start_episode(rng)
        dealt = [game.start_round(context, h, rng, []).private[AGENT] for h in range(1, hand + 1)]
        if dealt[-1] == card:
            seeds.append(candidate)
    return seeds


class KuhnAudit:
    """``StrategyAudit`` of Kuhn poker (see the module doc)."""

    title = "Kuhn poker: exact exploitability of the played policy"
    description = ("NashConv and exploitability are exact (OpenSpiel best responses) for each row's behavioural "
                   "policy at the 12 information sets: a model's is the mean of its probabilities of the "
                   "aggressive action after its own logged reply, over every decision it took at that set; a "
                   "script's is its exact table. Intervals: 95% episode bootstrap. Where a pool holds "
                   "BestResponse, its column is the exploit-pool advantage it won against the table measured on "
                   "the other pools, with its exact expectation (that table's NashConv) in parentheses.")
    scalars = ("nash_conv", "exploitability")
    labels: Mapping[str, str] = MappingProxyType({"nash_conv": "NashConv", "exploitability": "exploitability",
                                                  **FREQUENCY_LABELS})
    scores_played_actions = True

    def __init__(self, game: Game) -> None:
        self.game = game

    def probe_episodes(self, records: Sequence[EpisodeRecord], replies: int,
                       seed: int) -> list[tuple[str, Strategy, int]]:
        counts = episode_rows(records)[:, len(INFOSETS):].sum(axis=0)
        out = []
        for key, count in zip(INFOSETS, counts, strict=True):
            if count > 0:
                continue
            card, betting = key[0], key[1:]
            hand = 1 if betting in FIRST_MOVER_BETTINGS else 2
            for episode_seed in _probe_seeds(self.game, card, hand, replies, seed, key):
                out.append((key, _ProbeOpponent(betting), episode_seed))
        return out

    def unreached(self, probes: Mapping[str, Sequence[EpisodeRecord]]) -> dict[str, Any]:
        out = {}
        for key, episodes in probes.items():
            probe_rows = episode_rows(episodes)
            n = probe_rows[:, len(INFOSETS) + _SLOT[key]].sum()
            out[key] = {"probability": float(probe_rows[:, _SLOT[key]].sum() / n) if n else UNREACHABLE_PROBABILITY,
                        "decisions": int(n)}
        return out

    def summarise(self, records: Sequence[EpisodeRecord], unreached: Mapping[str, Any], *,
                  exact_strategy: Strategy | None, bootstrap_samples: int, confidence: float,
                  seed: int) -> dict[str, Any]:
        from sepo.exploitability import equilibrium_frequencies

        check_settings(bootstrap_samples, confidence)
        rows = episode_rows(records)
        counts = rows[:, len(INFOSETS):].sum(axis=0)
        exact = getattr(exact_strategy, "policy_table", None)
        if exact is not None:
            table = np.array([exact()[key] for key in INFOSETS])
            point = table_values(table)
            results = {name: {"value": v, "ci_low": v, "ci_high": v} for name, v in point.items()}
            unreached = {}
            source = f"exact table of {exact_strategy.name}"
        else:
            fill = {key: u["probability"] for key, u in unreached.items()}
            table = tables(rows.sum(axis=0)[None, :], fill)[0]
            point = table_values(table)
            summary = {"unreached": unreached}
            samples = self.scalar_samples(records, summary,
                                          Strata.of(records).sample_indices(bootstrap_samples,
                                                                            np.random.default_rng(seed)))
            results = {name: interval(point[name], samples[name], confidence) for name in point}
            source = "played: mean probability after the agent's own reply at each set"
        return {
            "title": self.title,
            "description": self.description,
            "labels": dict(self.labels),
            "order": [*self.scalars, *FREQUENCY_LABELS],  # JSON files sort their keys: the report's column order
            "source": source,
            "policy_table": {key: float(p) for key, p in zip(INFOSETS, table, strict=True)},
            "infoset_decisions": {key: int(c) for key, c in zip(INFOSETS, counts, strict=True)},
            "unreached": dict(unreached),
            "scalars": {name: results[name] for name in self.scalars},
            "frequencies": {name: results[name] for name in FREQUENCY_LABELS},
            "reference": f"the α = {EQUILIBRIUM_ALPHA:.4g} equilibrium",
            "reference_frequencies": equilibrium_frequencies(EQUILIBRIUM_ALPHA),
        }

    def played_policy(self, records: Sequence[EpisodeRecord], unreached: Mapping[str, Any], *,
                      exact_strategy: Strategy | None = None,
                      fallback: Mapping[str, float] | None = None) -> dict[str, float]:
        """The played table of ``records`` (the measure of ``summarise``), a dict over ``INFOSETS``.

        A script with an exact table (``exact_strategy``) is that table.  A
        set no record reached takes the probes' value from ``unreached``, else
        ``fallback``'s (an earlier table: SEPO training refreshes from one
        step's rollouts), else 1/2.
        """
        exact = getattr(exact_strategy, "policy_table", None)
        if exact is not None:
            return {key: float(exact()[key]) for key in INFOSETS}
        fill = {**(fallback or {}), **{key: u["probability"] for key, u in unreached.items()}}
        table = tables(episode_rows(records).sum(axis=0)[None, :], fill)[0]
        return {key: float(p) for key, p in zip(INFOSETS, table, strict=True)}

    def scalar_samples(self, records: Sequence[EpisodeRecord], summary: Mapping[str, Any],
                       indices: np.ndarray) -> dict[str, np.ndarray]:
        strata = Strata.of(records)
        rows = episode_rows([records[i] for i in strata.order])
        fill = {key: u["probability"] for key, u in summary.get("unreached", {}).items()}
        return _values_of_tables(tables(rows[indices].sum(axis=1), fill))
