"""TRL's multi-turn ``rollout_func``: every episode of a GRPO step, played in lockstep.

TRL calls ``GroupRollout(prompts, trainer)`` once per generation batch with
each group's prompt (its ``GroupKey``) repeated G times in a row, and expects
one sample per prompt received.  All episodes of the step, G per group plus
any auxiliary ones, go to ``sepo.rollout.play_episodes`` together, so the
policy makes one batched call per round for the whole step.  Each finished
chat becomes TRL's ``prompt_ids`` / ``completion_ids`` with ``env_mask``
hiding the environment's turns (``chat_tokens``); ``logprobs`` is None (TRL
only needs sampling log-probs for vLLM's importance-sampling correction, and
the trained tokens are the chat's own, see ``chat_tokens``).  The episode's
measured reward components and counts ride along as extra fields, which TRL
hands to the reward functions.

Reproducibility: the sampling generator is reseeded from (seed, step) at
every call, so a run resumed from a checkpoint plays the same episodes as
one that never stopped.

An opponent that adapts to the agent (Kuhn's ``BestResponse``) is bound to
the current model's table, refreshed every ``sepo.best_response_refresh_steps``
steps from the step's own rollouts (``sepo.training.adaptive``): the step's
other episodes are played first, then the adaptive ones.  Without such an
opponent every episode of the step is one lockstep pass, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sepo.config import Params
from sepo.rollout import AgentPolicy, EpisodeSpec, PlayedEpisode, play_adaptive_last, play_episodes
from sepo.training.adaptive import AdaptiveOpponents
from sepo.training.chat_tokens import chat_tokens
from sepo.training.groups import TRAINING_POOLS, GroupKey, auxiliary_keys, derived_seed
from sepo.training.rewards import episode_fields

#: builds the step's policy from (trainer, rollout seed); the default samples from the trainer's model
PolicyFactory = Callable[[Any, int], AgentPolicy]


def sampling_settings(params: Params):
    """``params.generation`` as the model policy's sampling settings."""
    from sepo.policies.model import SamplingSettings

    g = params.generation
    return SamplingSettings(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                            max_new_tokens=g.max_new_tokens, greedy=g.greedy)


class GroupRollout:
    """The ``rollout_func`` of one SEPO run (one domain, one penalty mode)."""

    def __init__(self, params: Params, game: str, mode: str, seed: int, tokenizer,
                 policy_factory: PolicyFactory | None = None) -> None:
        self.params = params
        self.game_name = game
        self.game = params.game(game)
        self.mode = mode
        self.seed = seed
        self.tokenizer = tokenizer
        self.policy_factory = policy_factory or self._model_policy
        self.opponents = {name: params.strategy(game, name)
                          for pool in TRAINING_POOLS for name in params.games[game].pools.of(pool)}
        self.adaptive = AdaptiveOpponents(self.game, self.opponents, params.sepo.best_response_refresh_steps,
                                          params.sepo.best_response_mixture)
        self.last_seconds = 0.0  # wall time of the latest call's episodes, for the step log

    def __call__(self, prompts: Sequence[str], trainer) -> dict[str, Any]:
        start = time.perf_counter()
        step = trainer.state.global_step
        keys = [GroupKey.from_prompt(p) for p in prompts]
        for key in keys:
            if key.game != self.game_name:
                raise ValueError(f"group {key.prompt!r} is not a {self.game_name} group")
        auxiliary = [auxiliary_keys(self.params, self.game_name, self.seed, step, index)
                     if self.mode == "auxiliary" else [] for index in range(len(keys))]
        specs = [self._spec(k) for k in keys] + [self._spec(k) for group in auxiliary for k in group]
        policy = self.policy_factory(trainer, derived_seed("sepo-rollout", self.seed, step))
        model = trainer.model
        was_training = model.training
        model.eval()  # sample without dropout
        try:
            played = self._play(specs, policy, trainer, step, "train" if was_training else "eval")
        finally:
            model.train(was_training)
        main, extra = played[:len(keys)], iter(played[len(keys):])
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "env_mask": [], "logprobs": None}
        for episode, group in zip(main, auxiliary, strict=True):
            tokens = chat_tokens(episode.messages, self.tokenizer)
            out["prompt_ids"].append(tokens.prompt_ids)
            out["completion_ids"].append(tokens.completion_ids)
            out["env_mask"].append(tokens.env_mask)
            aux_records = [next(extra).record for _ in group]
            for name, value in episode_fields(self.game, episode.record, aux_records).items():
                out.setdefault(name, []).append(value)
        self.last_seconds = time.perf_counter() - start
        return out

    def _play(self, specs: list[EpisodeSpec], policy: AgentPolicy, trainer, step: int,
              mode: str) -> list[PlayedEpisode]:
        """Every episode of the step, in ``specs`` order; adaptive opponents in a second pass (module doc)."""
        batch_size = self.params.generation.batch_size
        if not self.adaptive:
            return play_episodes(specs, policy, batch_size=batch_size)
        self.adaptive.restore(trainer.state.log_history)
        refresh = self.adaptive.refresh_due(step)

        def bind(first: dict[int, PlayedEpisode]) -> dict[int, EpisodeSpec]:
            if refresh:
                measured = [first[i] for i in sorted(first)] or play_episodes(self._measuring_specs(step), policy,
                                                                             batch_size=batch_size)
                self.adaptive.refresh(policy, measured)
            return {i: self.adaptive.spec(s) for i, s in enumerate(specs) if i not in first}

        played = play_adaptive_last(specs, policy, bind, batch_size=batch_size)
        store = getattr(trainer, "_metrics", None)  # TRL's metric store, logged and cleared every step
        if store is not None:
            for name, value in self.adaptive.log_metrics(refresh).items():
                store[mode][name].append(value)
        return played

    def _measuring_specs(self, step: int) -> list[EpisodeSpec]:
        """One episode per training-pool opponent that does not adapt, for a step with nothing else to measure."""
        names = [n for n in self.params.games[self.game_name].pools.of("train") if n not in self.adaptive.names]
        return [EpisodeSpec(self.game, self.opponents[n], "train",
                            derived_seed("sepo-best-response", self.seed, self.game_name, step, n)) for n in names]

    def _spec(self, key: GroupKey) -> EpisodeSpec:
        return EpisodeSpec(self.game, self.opponents[key.opponent], key.pool, key.seed)

    def _model_policy(self, trainer, seed: int) -> AgentPolicy:
        from sepo.policies.model import ModelPolicy

        model = trainer.accelerator.unwrap_model(trainer.model)
        return ModelPolicy(model, self.tokenizer, sampling_settings(self.params), seed=seed)
