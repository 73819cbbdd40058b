"""A model's probabilities of the legal actions after its own replies: the policy it actually played.

The decode loop samples a reply and its ``Action: X`` line token by token,
so the action a model plays is drawn *after* its reasoning.  Measuring its
behavioural policy (SPEC section 4) therefore scores each legal action after
the logged reply up to its final ``Action:`` line
(``sepo.games.parsing.reply_before_action``), not after the bare prompt.

Exact choices:

- Scores are ``ModelPolicy.action_log_scores`` of the rendered chat plus that
  text, turned into the distribution the sampler draws the action from:
  softmax of score / T over the legal actions, then the sampler's top-k and
  top-p truncation (``sepo.policies.decoding.sample_tokens``: a candidate is
  dropped when the strictly better ones already hold ``top_p``) and
  renormalised.  This is exact for single-token actions whose tokens hold
  the probability mass after ``Action: `` (a trained model's case: the
  logged action frequencies must agree with it, and a test checks they do).
  Greedy decoding gives the arg-max with probability 1.
- A reply without an ``Action:`` line was decided by the constrained
  fallback: it counts as the action played, with probability 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from sepo.games.parsing import reply_before_action
from sepo.games.protocol import EpisodeRecord
from sepo.rollout import PlayedEpisode

#: first part of the cache keys under which scoring keeps an episode's keys/values (never a live episode's)
_SCORING = "played-action-scores"


def probabilities_from_scores(scores: Mapping[str, float], temperature: float, greedy: bool,
                              top_p: float = 1.0, top_k: int = 0) -> dict[str, float]:
    """Log-scores of the legal actions -> the probabilities the sampler draws them with (see the module doc)."""
    if greedy:
        best = max(scores, key=scores.__getitem__)
        return {a: float(a == best) for a in scores}
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)  # ties keep the legal order
    if 0 < top_k < len(ranked):
        ranked = ranked[:top_k]
    top = scores[ranked[0]]
    weights = [math.exp((scores[a] - top) / temperature) for a in ranked]
    total = sum(weights)
    kept, before = [], 0.0
    for action, weight in zip(ranked, weights, strict=True):
        if top_p < 1.0 and before >= top_p:
            break
        kept.append((action, weight))
        before += weight / total
    mass = sum(w for _, w in kept)
    chosen = dict(kept)
    return {a: chosen.get(a, 0.0) / mass for a in scores}


def scored_records(policy, played: Sequence[PlayedEpisode]) -> list[EpisodeRecord]:
    """Each episode's record with ``Decision.probabilities`` set for every agent decision.

    ``policy`` is the ``ModelPolicy`` that played them (``render``,
    ``action_log_scores`` and ``sampling``).  Decision ``k`` of an episode
    saw the chat ``messages[:2k + 2]`` (system, then user/assistant turns)
    and replied ``messages[2k + 2]``.
    """
    # decision k of every episode together, then k + 1: each episode's scoring context extends its
    # previous one, so with its keys/values kept under the episode's key only the new tokens run
    # (the whole transcript once instead of once per decision)
    pending: dict[int, list[tuple[int, str]]] = {}
    for e, episode in enumerate(played):
        for k, decision in enumerate(episode.record.decisions):
            head = reply_before_action(decision.reply)
            if head is not None:
                pending.setdefault(k, []).append((e, policy.render(episode.messages[:2 * k + 2]) + head))
    keys = {e: (_SCORING, id(played), e) for e in range(len(played))}
    scores: dict[tuple[int, int], dict[str, float]] = {}
    try:
        for k in sorted(pending):
            rows = pending[k]
            legal = [played[e].record.decisions[k].legal_actions for e, _ in rows]
            found = policy.action_log_scores([context for _, context in rows], legal,
                                             cache_keys=[keys[e] for e, _ in rows], keep=True)
            scores.update({(e, k): s for (e, _), s in zip(rows, found, strict=True)})
    finally:
        getattr(policy, "forget", lambda _keys: None)(list(keys.values()))
    sampling = policy.sampling
    scored = {place: probabilities_from_scores(s, sampling.temperature, sampling.greedy, sampling.top_p,
                                               sampling.top_k)
              for place, s in scores.items()}
    out = []
    for e, episode in enumerate(played):
        record = episode.record
        decisions = [replace(d, probabilities=scored.get((e, k), {a: float(a == d.action) for a in d.legal_actions}))
                     for k, d in enumerate(record.decisions)]
        out.append(replace(record, decisions=decisions))
    return out
