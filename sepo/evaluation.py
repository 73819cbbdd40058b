"""Evaluate one policy on one domain against every opponent of every pool.

The same function serves scripted and model policies: episodes are played by
the lockstep engine and scored by ``sepo.metrics``.  Seeds are derived from
(base seed, domain, pool, opponent, index) by hashing, so adding an opponent
never changes another opponent's episodes and a run is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from sepo.config import Params
from sepo.games.protocol import POOLS, EpisodeRecord
from sepo.metrics import evaluate_episodes
from sepo.rollout import AgentPolicy, EpisodeSpec, PlayedEpisode, play_episodes


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


def is_model_policy(policy: AgentPolicy) -> bool:
    """Whether ``policy`` is a language model (it can score actions and render chats)."""
    return hasattr(policy, "action_log_scores") and hasattr(policy, "render")


def audited_records(params: Params, game_name: str, policy: AgentPolicy,
                    played: Sequence[PlayedEpisode]) -> tuple[list[EpisodeRecord], dict[str, Any] | None]:
    """The records to log and the domain's strategy audit section (None when the domain has no audit).

    When the domain's audit reads played probabilities (Kuhn), a model's
    records get them (``sepo.policies.action_scores``).  The audit's probe
    episodes, for information sets the evaluation never reached, are played
    here by the same policy with its own sampling, after the evaluation
    episodes, so they never change those.
    """
    game = params.game(game_name)
    records = [p.record for p in played]
    audit = game.strategy_audit()
    if audit is None:
        return records, None
    score = audit.scores_played_actions and is_model_policy(policy)
    if score:
        from sepo.policies.action_scores import scored_records

        records = scored_records(policy, played)
    exact = getattr(policy, "strategy", None)
    probes: dict[str, list[EpisodeRecord]] = {}
    if getattr(exact, "policy_table", None) is None:
        wanted = audit.probe_episodes(records, params.eval.unreached_infoset_replies, params.eval.seed)
        if wanted:
            specs = [EpisodeSpec(game, opponent, "probe", seed) for _, opponent, seed in wanted]
            probe_played = play_episodes(specs, policy, batch_size=params.generation.batch_size)
            if score:
                from sepo.policies.action_scores import scored_records

                probe_records = scored_records(policy, probe_played)
            else:
                probe_records = [p.record for p in probe_played]
            for (label, _, _), record in zip(wanted, probe_records, strict=True):
                probes.setdefault(label, []).append(record)
    summary = audit.summarise(records, audit.unreached(probes), exact_strategy=exact,
                              bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence,
                              seed=params.eval.seed)
    return records, summary


def policy_evaluation(params: Params, game_name: str, policy: AgentPolicy, *, name: str, source: str,
                      batch_size: int | None = None,
                      on_step: Callable[[int], None] | None = None) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """One row of the report: ``evaluate_policy`` (``eval.episodes_for(name, game_name)`` episodes
    per opponent) plus ``with_audit_fields``; the records to log."""
    episodes = params.eval.episodes_for(name, game_name)
    result, played = evaluate_policy(params, game_name, policy, episodes=episodes, batch_size=batch_size,
                                     on_step=on_step)
    return with_audit_fields(params, game_name, policy, {"policy": name, "source": source, **result}, played)


def with_audit_fields(params: Params, game_name: str, policy: AgentPolicy, result: dict[str, Any],
                      played: Sequence[PlayedEpisode]) -> tuple[dict[str, Any], list[EpisodeRecord]]:
    """``result`` plus what is needed to recheck it and the domain's strategy audit; the records to log.

    Adds the profile, the payoff scale and the λ's of ``safety`` (so it can
    be recomputed from the components), the sampling settings of a model
    policy, and, for a domain with a strategy audit (Kuhn), its section
    under ``audit`` (``audited_records``).
    """
    game = params.game(game_name)
    result = {"profile": params.profile, **result, "scale": game.scale,
              "weights": params.games[game_name].report_weights.model_dump()}
    if is_model_policy(policy):
        g = params.generation
        result["generation"] = {"temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k,
                                "max_new_tokens": g.max_new_tokens, "greedy": g.greedy, "seed": g.seed}
    records, audit = audited_records(params, game_name, policy, played)
    if audit is not None:
        result["audit"] = audit
    return result, records
