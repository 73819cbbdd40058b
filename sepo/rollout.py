"""Lockstep episodes: every active episode's next decision in one batched call.

The engine owns the chats (SPEC section 2: one chat per episode; system =
rules, user = state at each decision, assistant = the agent's reply) and
the episodes; an ``AgentPolicy`` only turns a batch of decision requests
into replies.  Scripted and model policies go through the same engine, so
evaluation, GRPO rollouts and data generation see identical prompts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sepo.games.protocol import Episode, EpisodeRecord, Game, SeatView, Strategy, adapts_to_agent, stream

Message = dict[str, str]


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to play: domain, opponent, its pool and the environment seed."""

    game: Game
    opponent: Strategy
    pool: str
    seed: int


@dataclass
class DecisionRequest:
    """One pending decision of one episode."""

    episode_index: int
    game: Game
    view: SeatView
    messages: list[Message]  # the chat so far, ending with the current state
    seed: int
    agent_rng: random.Random  # the episode's "agent" stream, for scripted agents
    #: the same key at every decision of one episode, so a policy may reuse work on the
    #: chat's shared prefix (a model's KV cache); None when there is nothing to reuse
    cache_key: Hashable | None = None


@dataclass
class AgentReply:
    """What the policy said and which legal action is played.

    ``valid`` is False when the reply did not parse and the policy's
    constrained fallback chose the action.  ``extras`` carries anything the
    caller needs back (token ids, log-probs) without the engine knowing it.
    """

    text: str
    action: str
    valid: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


class AgentPolicy(Protocol):
    """Turns a batch of decisions into replies (one per request, same order).

    A policy that keeps per-episode state under ``DecisionRequest.cache_key``
    may also define ``forget(cache_keys)``: the engine calls it with the keys
    of the episodes that just ended, so that state can be freed.
    """

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]: ...


@dataclass
class PlayedEpisode:
    """A finished episode: the record the metrics read, the chat and per-reply extras."""

    record: EpisodeRecord
    messages: list[Message]
    replies: list[AgentReply]


def play_episodes(specs: Sequence[EpisodeSpec], policy: AgentPolicy, batch_size: int | None = None,
                  on_step: Callable[[int], None] | None = None,
                  max_active: int | None = None) -> list[PlayedEpisode]:
    """Play all ``specs`` in lockstep; results come back in the order of ``specs``.

    At each step the pending decisions of all active episodes go to the
    policy in chunks of at most ``batch_size`` (all at once when None), so
    wall time grows with the number of rounds, not of episodes.
    ``on_step(n)`` is told how many decisions were just made (progress bars).

    ``max_active``: at most this many episodes in play at once, in waves of
    consecutive specs.  A model policy keeps every running episode's
    keys/values, so memory grows with the episodes in play (an IPD
    evaluation of 2,880 episodes peaked at 5.3 GB); a wave of several
    ``batch_size`` chunks keeps the batches as full as before.
    """
    if max_active is not None and len(specs) > max_active:
        return [played for start in range(0, len(specs), max_active)
                for played in play_episodes(specs[start:start + max_active], policy, batch_size, on_step)]
    episodes = [Episode(s.game, s.opponent, s.seed, s.pool) for s in specs]
    chats: list[list[Message]] = [[{"role": "system", "content": s.game.rules_text()}] for s in specs]
    replies: list[list[AgentReply]] = [[] for _ in specs]
    agent_rngs = [stream(s.seed, "agent") for s in specs]
    cache_keys = [object() for _ in specs]  # unique per episode of this call
    forget = getattr(policy, "forget", None)
    while True:
        active = [i for i, e in enumerate(episodes) if not e.is_terminal]
        if not active:
            break
        requests = []
        for i in active:
            view = episodes[i].agent_view()
            chats[i].append({"role": "user", "content": specs[i].game.state_text(view)})
            requests.append(DecisionRequest(i, specs[i].game, view, chats[i], specs[i].seed, agent_rngs[i],
                                            cache_keys[i]))
        chunk = batch_size or len(requests)
        for start in range(0, len(requests), chunk):
            batch = requests[start:start + chunk]
            for request, reply in zip(batch, policy.decide(batch), strict=True):
                i = request.episode_index
                chats[i].append({"role": "assistant", "content": reply.text})
                replies[i].append(reply)
                episodes[i].step(reply.action, reply=reply.text, valid=reply.valid)
            if forget is not None:
                forget([cache_keys[r.episode_index] for r in batch if episodes[r.episode_index].is_terminal])
            if on_step is not None:
                on_step(len(batch))
    return [PlayedEpisode(e.record, c, r) for e, c, r in zip(episodes, chats, replies, strict=True)]


def play_adaptive_last(specs: Sequence[EpisodeSpec], policy: AgentPolicy,
                       bind: Callable[[dict[int, PlayedEpisode]], Mapping[int, EpisodeSpec]], *,
                       batch_size: int | None = None, on_step: Callable[[int], None] | None = None,
                       max_active: int | None = None) -> list[PlayedEpisode]:
    """Every spec's episode, in ``specs`` order, those against adaptive opponents played last.

    An opponent that adapts to the agent (``adapts_to_agent``, e.g. Kuhn's
    ``BestResponse``) must face the policy measured now, so the other
    episodes go first, in one lockstep pass; ``bind`` turns what they played
    (spec index -> episode) into the adaptive specs' bound versions (spec
    index -> spec), which a second lockstep pass plays.  ``bind`` may
    replace a first-pass episode with the same one enriched (e.g. scored:
    ``Decision.probabilities``); what it leaves is returned.  Evaluation,
    checkpoint selection and SEPO's training rollouts all play this way.
    """
    first = [i for i, s in enumerate(specs) if not adapts_to_agent(s.opponent)]
    played = dict(zip(first, play_episodes([specs[i] for i in first], policy, batch_size=batch_size,
                                           on_step=on_step, max_active=max_active), strict=True))
    bound = bind(played)
    second = [i for i in range(len(specs)) if i not in played]
    played.update(zip(second, play_episodes([bound[i] for i in second], policy, batch_size=batch_size,
                                            on_step=on_step, max_active=max_active), strict=True))
    return [played[i] for i in range(len(specs))]


class ScriptedAgent:
    """A scripted strategy in the agent's seat, behind the batched policy interface.

    Its dice are the episode's "agent" stream, so a scripted agent plays the
    same way in a batch as alone.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.name = strategy.name

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        out = []
        for r in requests:
            action = self.strategy.act(r.view, r.agent_rng)
            out.append(AgentReply(text=f"Action: {action}", action=action))
        return out
