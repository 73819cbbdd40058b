"""Evaluate one policy on one domain against every opponent of every pool.

The same function serves scripted and model policies: episodes are played by
the lockstep engine and scored by ``sepo.metrics``.  Seeds are derived from
(base seed, domain, pool, opponent, index) by hashing, so adding an opponent
never changes another opponent's episodes and a run is reproducible.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from sepo.config import Params
from sepo.exploitability import equilibrium_frequencies, exploitability, nash_conv, strategy_frequencies
from sepo.games.kuhn import FIRST_MOVER_BETTINGS, INFOSETS, aggressive_action, betting_legal_actions, infoset_key
from sepo.games.protocol import POOLS, Game, SeatView
from sepo.metrics import evaluate_episodes
from sepo.rollout import AgentPolicy, DecisionRequest, EpisodeSpec, PlayedEpisode, play_episodes


def episode_seed(base: int, game: str, pool: str, opponent: str, index: int) -> int:
    """A stable 63-bit seed for one evaluation episode."""
    digest = hashlib.sha256(f"{base}/{game}/{pool}/{opponent}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def evaluation_specs(params: Params, game_name: str, episodes: int, seed: int) -> list[EpisodeSpec]:
    """Every (pool, opponent, episode) of a domain's evaluation, in a fixed order."""
    game = params.game(game_name)
    specs = []
    for pool in POOLS:
        for opponent in params.pool(game_name, pool):
            for index in range(episodes):
                specs.append(EpisodeSpec(game, opponent, pool,
                                         episode_seed(seed, game_name, pool, opponent.name, index)))
    return specs


def evaluate_policy(params: Params, game_name: str, policy: AgentPolicy, *, episodes: int | None = None,
                    seed: int | None = None, batch_size: int | None = None,
                    on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[PlayedEpisode]]:
    """All metrics of SPEC section 4 with bootstrap CIs, and the played episodes."""
    return evaluate_games(params, [game_name], policy, episodes=episodes, seed=seed, batch_size=batch_size,
                          on_step=on_step)[game_name]


Evaluated = tuple[dict[str, Any], list[PlayedEpisode]]


def evaluate_games(params: Params, game_names: Sequence[str], policy: AgentPolicy, *, episodes: int | None = None,
                   seed: int | None = None, batch_size: int | None = None,
                   on_step: Callable[[int], None] | None = None) -> dict[str, Evaluated]:
    """``evaluate_policy`` for several domains in one lockstep run: game -> (result, episodes).

    All domains' episodes advance together: as many batched steps as the
    longest domain has rounds, instead of the sum over domains.  That pays
    where a step's cost is fixed overhead (large models, GPUs); on a CPU with
    the tiny model a step is bound by reading the batch's cache, and the
    joint run measured no faster than domain by domain
    (``benchmarks/evaluate_model.py``).  The episodes and each domain's
    metrics do not depend on the grouping.
    """
    episodes = params.eval.episodes if episodes is None else episodes
    seed = params.eval.seed if seed is None else seed
    specs = {g: evaluation_specs(params, g, episodes, seed) for g in game_names}
    played = play_episodes([s for g in game_names for s in specs[g]], policy, batch_size=batch_size,
                           on_step=on_step)
    out, start = {}, 0
    for game_name in game_names:
        mine, start = played[start:start + len(specs[game_name])], start + len(specs[game_name])
        metrics = evaluate_episodes(
            specs[game_name][0].game, [p.record for p in mine], params.games[game_name].report_weights.model_dump(),
            bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence, seed=seed)
        out[game_name] = ({"game": game_name, "episodes_per_opponent": episodes, "seed": seed, "metrics": metrics},
                          mine)
    return out


def kuhn_infoset_requests(game: Game) -> list[DecisionRequest]:
    """One first-hand decision per Kuhn information set, in ``INFOSETS`` order (SPEC section 4).

    Each is the chat a policy sees at the first hand of an episode holding
    that card after that betting: the rules, then the hand's state with no
    past hands.  The agent moves first in hand 1 of a real episode, so the
    second-mover sets ("p", "b") are asked of a hand 1 in which the opponent
    acts first; the state text is otherwise exactly the engine's.
    """
    requests = []
    for index, key in enumerate(INFOSETS):
        card, betting = key[0], key[1:]
        view = SeatView(game=game.name, round=1, rounds=game.rounds, private=card,
                        public={"moves_first": betting in FIRST_MOVER_BETTINGS, "betting": betting},
                        history=(), legal_actions=betting_legal_actions(betting))
        messages = [{"role": "system", "content": game.rules_text()},
                    {"role": "user", "content": game.state_text(view)}]
        requests.append(DecisionRequest(index, game, view, messages, seed=index, agent_rng=random.Random(index)))
    return requests


def model_kuhn_policy_table(policy: Any, game: Game) -> dict[str, float]:
    """P(BET or CALL) at each of the 12 information sets, from the model's action probabilities."""
    requests = kuhn_infoset_requests(game)
    probabilities = policy.action_probabilities(requests)
    return {infoset_key(r.view): p[aggressive_action(r.view.legal_actions)]
            for r, p in zip(requests, probabilities, strict=True)}


def kuhn_strategy_report(policy_table: dict[str, float], alpha: float) -> dict[str, Any]:
    """The exact Kuhn numbers for a policy table: NashConv, exploitability, key frequencies."""
    return {
        "policy_table": dict(sorted(policy_table.items())),
        "nash_conv": nash_conv(policy_table),
        "exploitability": exploitability(policy_table),
        "frequencies": strategy_frequencies(policy_table),
        "equilibrium_frequencies": equilibrium_frequencies(alpha),
    }


def policy_evaluation(params: Params, game_name: str, policy: AgentPolicy, *, name: str, source: str,
                      batch_size: int | None = None,
                      on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[PlayedEpisode]]:
    """One row of the report: ``evaluate_policy`` (``eval.row_episodes[name]`` or ``eval.episodes``
    per opponent) plus ``with_audit_fields``."""
    episodes = params.eval.row_episodes.get(name, params.eval.episodes)
    result, played = evaluate_policy(params, game_name, policy, episodes=episodes, batch_size=batch_size,
                                     on_step=on_step)
    return with_audit_fields(params, game_name, policy, {"policy": name, "source": source, **result}), played


def with_audit_fields(params: Params, game_name: str, policy: AgentPolicy, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` plus what is needed to recheck it and, for Kuhn, the exact strategy numbers.

    Adds the profile, the payoff scale and the λ's of ``safety`` (so it can
    be recomputed from the components), the sampling settings of a model
    policy, and for Kuhn the 12-infoset policy table with its exact
    NashConv, exploitability and key frequencies.  A scripted Kuhn strategy
    gives its table directly; a model policy's is read from its action
    probabilities at first-hand prompts.
    """
    game = params.game(game_name)
    result = {"profile": params.profile, **result, "scale": game.scale,
              "weights": params.games[game_name].report_weights.model_dump()}
    if hasattr(policy, "action_probabilities"):
        g = params.generation
        result["generation"] = {"temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k,
                                "max_new_tokens": g.max_new_tokens, "greedy": g.greedy, "seed": g.seed}
    if game_name == "kuhn":
        strategy = getattr(policy, "strategy", None)
        if hasattr(strategy, "policy_table"):
            table = strategy.policy_table()
        elif hasattr(policy, "action_probabilities"):
            table = model_kuhn_policy_table(policy, game)
        else:
            raise TypeError(f"{type(policy).__name__}: a Kuhn policy needs policy_table() or action_probabilities()")
        alpha = params.games["kuhn"].strategies.get("NashApprox", {}).get("alpha", 1 / 3)
        result["kuhn"] = kuhn_strategy_report(table, alpha)
    return result
