"""Evaluate one policy on one domain against every opponent of every pool.

The same function serves scripted and model policies: episodes are played by
the lockstep engine and scored by ``sepo.metrics``.  Seeds are derived from
(base seed, domain, pool, opponent, index) by hashing, so adding an opponent
never changes another opponent's episodes and a run is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sepo.config import Params
from sepo.games.protocol import POOLS, EpisodeRecord, Game, Strategy, StrategyAudit, adapts_to_agent
from sepo.metrics import evaluate_episodes, opponent_advantage
from sepo.rollout import AgentPolicy, EpisodeSpec, PlayedEpisode, play_adaptive_last, play_episodes


def episode_seed(base: int, game: str, pool: str, opponent: str, index: int) -> int:
    """A stable 63-bit seed for one evaluation episode."""
    digest = hashlib.sha256(f"{base}/{game}/{pool}/{opponent}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def evaluation_specs(params: Params, game_name: str, episodes: int, seed: int,
                     pools: Sequence[str] = POOLS) -> list[EpisodeSpec]:
    """Every (pool, opponent, episode) of a domain's evaluation (of ``pools``), in a fixed order."""
    game = params.game(game_name)
    specs = []
    for pool in (p for p in POOLS if p in pools):
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
                   on_step: Callable[[int], None] | None = None,
                   pools: Sequence[str] = POOLS) -> dict[str, Evaluated]:
    """``evaluate_policy`` for several domains in one lockstep run: game -> (result, episodes).

    All domains' episodes advance together: as many batched steps as the
    longest domain has rounds, instead of the sum over domains.  That pays
    where a step's cost is fixed overhead (large models, GPUs); on a CPU with
    the tiny model a step is bound by reading the batch's cache, and the
    joint run measured no faster than domain by domain
    (``benchmarks/evaluate_model.py``).  The episodes and each domain's
    metrics do not depend on the grouping.  ``pools`` may leave pools out
    (the ablation reads the training pools only).

    An opponent that adapts to the agent (``AdaptiveStrategy``: Kuhn's
    ``BestResponse``, SPEC section 8) is played in a second pass.  The first
    pass plays every other (pool, opponent) slot; the domain's strategy audit
    then measures the agent's policy on those episodes exactly as it reports
    it (``StrategyAudit.played_policy``: for Kuhn the played table, a model's
    decisions scored after its own replies, unreached sets from the audit's
    probe episodes, a script's exact table) and the adaptive opponents,
    bound to that measurement, play their episodes with the same seeds as any
    slot.  Against ``BestResponse`` the exploit-pool advantage is then the
    agent's true exploitability (its expectation is the bound table's
    NashConv, recorded beside the measured advantage in ``audit.adaptive_opponents``).
    """
    episodes = params.eval.episodes if episodes is None else episodes
    seed = params.eval.seed if seed is None else seed
    specs = {g: evaluation_specs(params, g, episodes, seed, pools) for g in game_names}
    played, adaptive = play_binding_adaptive(params, specs, policy, batch_size=batch_size, on_step=on_step)
    out = {}
    for game_name in game_names:
        mine = played[game_name]
        game = params.game(game_name)
        metrics = evaluate_episodes(
            game, [p.record for p in mine], params.games[game_name].report_weights.model_dump(),
            bootstrap_samples=params.eval.bootstrap_samples, confidence=params.eval.confidence, seed=seed)
        result = {"game": game_name, "episodes_per_opponent": episodes, "seed": seed, "metrics": metrics}
        if adaptive[game_name].specs:
            result["adaptive_opponents"] = adaptive[game_name].summary(params, [p.record for p in mine])
        out[game_name] = (result, mine)
    return out


def is_model_policy(policy: AgentPolicy) -> bool:
    """Whether ``policy`` is a language model (it can score actions and render chats)."""
    return hasattr(policy, "action_log_scores") and hasattr(policy, "render")


def exact_strategy(policy: AgentPolicy) -> Strategy | None:
    """A scripted agent's strategy when it has an exact policy table (the audit then reads the table)."""
    strategy = getattr(policy, "strategy", None)
    return strategy if getattr(strategy, "policy_table", None) is not None else None


def scored(policy: AgentPolicy, audit: StrategyAudit, played: Sequence[PlayedEpisode]) -> list[PlayedEpisode]:
    """``played`` with ``Decision.probabilities`` on every decision when the audit reads them and a model played.

    Episodes already scored (a first pass that bound an adaptive opponent)
    are kept as they are, so no decision is scored twice.
    """
    if not (audit.scores_played_actions and is_model_policy(policy)):
        return list(played)
    todo = [i for i, p in enumerate(played) if any(d.probabilities is None for d in p.record.decisions)]
    if not todo:
        return list(played)
    from sepo.policies.action_scores import scored_records

    out = list(played)
    for i, record in zip(todo, scored_records(policy, [played[i] for i in todo]), strict=True):
        out[i] = replace(played[i], record=record)
    return out


def probed_unreached(params: Params, game: Game, audit: StrategyAudit, policy: AgentPolicy,
                     records: Sequence[EpisodeRecord], known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The audit's ``unreached`` for what ``records`` never reached, from probe episodes the policy plays.

    Items already measured in ``known`` (an earlier pass's probes) are
    reused, not played again.  A script with an exact table needs none.
    """
    if exact_strategy(policy) is not None:
        return {}
    known = known or {}
    wanted = audit.probe_episodes(records, params.eval.unreached_infoset_replies, params.eval.seed)
    reused = {label: known[label] for label, _, _ in wanted if label in known}
    wanted = [w for w in wanted if w[0] not in known]
    if not wanted:
        return reused
    specs = [EpisodeSpec(game, opponent, "probe", seed) for _, opponent, seed in wanted]
    probe_played = scored(policy, audit, play_episodes(specs, policy, batch_size=params.generation.batch_size,
                                                       max_active=params.generation.max_active_episodes))
    probes: dict[str, list[EpisodeRecord]] = {}
    for (label, _, _), episode in zip(wanted, probe_played, strict=True):
        probes.setdefault(label, []).append(episode.record)
    return {**reused, **audit.unreached(probes)}


@dataclass
class BoundOpponents:
    """The adaptive opponents of one domain's evaluation, bound to the first pass's measurement."""

    #: spec index -> the spec with its opponent bound
    specs: dict[int, EpisodeSpec]
    agent_policy: Any = None
    unreached: dict[str, Any] = field(default_factory=dict)

    def summary(self, params: Params, records: Sequence[EpisodeRecord]) -> dict[str, Any]:
        """What each adaptive slot was bound to, its exact expected advantage and the advantage it won."""
        slots: dict[str, Any] = {}
        for spec in self.specs.values():
            key = f"{spec.pool}/{spec.opponent.name}"
            if key in slots:
                continue
            mine = [r for r in records if (r.pool, r.opponent) == (spec.pool, spec.opponent.name)]
            slots[key] = {"expected_advantage": float(spec.opponent.expected_advantage()),
                          "advantage": opponent_advantage(spec.game, mine,
                                                          bootstrap_samples=params.eval.bootstrap_samples,
                                                          confidence=params.eval.confidence, seed=params.eval.seed)}
        return {"measured_on": "the first pass: every other slot's episodes (SPEC section 8)",
                "agent_policy": self.agent_policy, "unreached": self.unreached, "slots": slots}


def bind_adaptive_opponents(params: Params, game_name: str, policy: AgentPolicy, specs: Sequence[EpisodeSpec],
                            first_pass: dict[int, PlayedEpisode]) -> BoundOpponents:
    """Bind each adaptive opponent of ``specs`` to the agent's policy measured on ``first_pass`` (scored in place)."""
    adaptive = [i for i, s in enumerate(specs) if adapts_to_agent(s.opponent)]
    if not adaptive:
        return BoundOpponents(specs={})
    game = params.game(game_name)
    audit = game.strategy_audit()
    if audit is None:
        raise ValueError(f"{game_name}: opponent {specs[adaptive[0]].opponent.name} responds to the agent's "
                         "measured policy, but the domain has no strategy audit to measure it")
    order = sorted(first_pass)
    for i, episode in zip(order, scored(policy, audit, [first_pass[i] for i in order]), strict=True):
        first_pass[i] = episode
    records = [first_pass[i].record for i in order]
    unreached = probed_unreached(params, game, audit, policy, records)
    agent_policy = audit.played_policy(records, unreached, exact_strategy=exact_strategy(policy))
    bound = {i: replace(specs[i], opponent=specs[i].opponent.bind_to_agent(agent_policy)) for i in adaptive}
    return BoundOpponents(specs=bound, agent_policy=agent_policy, unreached=unreached)


def play_binding_adaptive(params: Params, specs: Mapping[str, Sequence[EpisodeSpec]], policy: AgentPolicy, *,
                          batch_size: int | None = None, on_step: Callable[[int], None] | None = None,
                          ) -> tuple[dict[str, list[PlayedEpisode]], dict[str, BoundOpponents]]:
    """Every domain's ``specs`` in lockstep, adaptive opponents in a second pass bound to the first's measurement.

    Returns per domain the played episodes in ``specs`` order (first-pass
    ones scored when the audit reads probabilities) and its bound opponents.
    Evaluation and SEPO's checkpoint selection both play this way, so a
    ``BestResponse`` in any pool always faces the policy being scored.
    """
    slots = [(g, i) for g in specs for i in range(len(specs[g]))]  # flat index -> (domain, index in domain)
    bound: dict[str, BoundOpponents] = {}

    def bind(first: dict[int, PlayedEpisode]) -> dict[int, EpisodeSpec]:
        played: dict[str, dict[int, PlayedEpisode]] = {g: {} for g in specs}
        for flat, episode in first.items():
            g, i = slots[flat]
            played[g][i] = episode
        bound.update({g: bind_adaptive_opponents(params, g, policy, specs[g], played[g]) for g in specs})
        first.update({flat: played[g][i] for flat, (g, i) in enumerate(slots) if i in played[g]})  # scored ones
        return {flat: bound[g].specs[i] for flat, (g, i) in enumerate(slots) if i in bound[g].specs}

    flat_played = play_adaptive_last([specs[g][i] for g, i in slots], policy, bind, batch_size=batch_size,
                                     on_step=on_step, max_active=params.generation.max_active_episodes)
    return {g: [e for (h, _), e in zip(slots, flat_played, strict=True) if h == g] for g in specs}, bound


def audited_records(params: Params, game_name: str, policy: AgentPolicy, played: Sequence[PlayedEpisode],
                    known_unreached: Mapping[str, Any] | None = None,
                    ) -> tuple[list[EpisodeRecord], dict[str, Any] | None]:
    """The records to log and the domain's strategy audit section (None when the domain has no audit).

    When the domain's audit reads played probabilities (Kuhn), a model's
    records get them (``sepo.policies.action_scores``).  The audit's probe
    episodes, for information sets the evaluation never reached, are played
    here by the same policy with its own sampling, after the evaluation
    episodes, so they never change those; ``known_unreached`` are probes a
    first pass already played (``evaluate_games``), reused.
    """
    game = params.game(game_name)
    audit = game.strategy_audit()
    if audit is None:
        return [p.record for p in played], None
    records = [p.record for p in scored(policy, audit, played)]
    unreached = probed_unreached(params, game, audit, policy, records, known_unreached)
    summary = audit.summarise(records, unreached, exact_strategy=exact_strategy(policy),
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
    adaptive = result.pop("adaptive_opponents", None)
    records, audit = audited_records(params, game_name, policy, played,
                                     known_unreached=adaptive["unreached"] if adaptive else None)
    if audit is not None:
        if adaptive is not None:
            audit["adaptive_opponents"] = adaptive  # beside NashConv: what the best response won against it
        result["audit"] = audit
    return result, records
