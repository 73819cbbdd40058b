"""The multi-turn rollout_func: one sample per prompt, lockstep batching, auxiliary crediting, reseeding."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sepo.rollout import AgentReply, DecisionRequest, ScriptedAgent
from sepo.training.groups import GroupKey
from sepo.training.rewards import credited_components
from sepo.training.rollout import GroupRollout
from sepo.training.run import RunPlan, build_trainer, load_policy_model
from tests.test_training_chat_tokens import tiny_model_dir
from tests.test_training_trainer import training_params

GROUP_SIZE = 4


class CountingAgent(ScriptedAgent):
    """A scripted agent that remembers the size of every batch it was asked to decide."""

    def __init__(self, strategy) -> None:
        super().__init__(strategy)
        self.batches: list[int] = []

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        self.batches.append(len(requests))
        return super().decide(requests)


def _trainer(tmp_path, mode: str = "per_rollout"):
    params = training_params()
    model, tokenizer = load_policy_model(params, tiny_model_dir())
    plan = RunPlan.from_params(params, "ipd", mode=mode, max_steps=1)
    return params, tokenizer, build_trainer(params, plan, model, tokenizer, tmp_path)


def _prompts(*keys: GroupKey) -> list[str]:
    return [key.prompt for key in keys for _ in range(GROUP_SIZE)]


def test_one_sample_per_prompt_from_one_batched_call_per_round(tmp_path):
    params, tokenizer, trainer = _trainer(tmp_path)
    agent = CountingAgent(params.strategy("ipd", "Random"))
    rollout = GroupRollout(params, "ipd", "per_rollout", 0, tokenizer, lambda _t, _s: agent)
    keys = (GroupKey("ipd", "train", "Grim", 5), GroupKey("ipd", "exploit", "AlwaysDefect", 6))
    out = rollout(_prompts(*keys), trainer)
    assert len(out["prompt_ids"]) == len(out["completion_ids"]) == len(out["env_mask"]) == 2 * GROUP_SIZE
    assert out["pool"] == ["train"] * GROUP_SIZE + ["exploit"] * GROUP_SIZE
    assert agent.batches == [2 * GROUP_SIZE] * params.games["ipd"].rounds  # lockstep: a call per round
    assert out["logprobs"] is None
    assert all(len(m) == len(c) for m, c in zip(out["env_mask"], out["completion_ids"], strict=True))


def test_auxiliary_penalty_does_not_depend_on_the_credited_episode(tmp_path):
    params, tokenizer, trainer = _trainer(tmp_path, "auxiliary")
    # a random scripted agent whose dice follow the episode seed: different seeds, different actions
    rollout = GroupRollout(params, "ipd", "auxiliary", 0, tokenizer,
                           lambda _t, _s: ScriptedAgent(params.strategy("ipd", "Random")))
    first = rollout(_prompts(GroupKey("ipd", "train", "TitForTat", 1)), trainer)
    second = rollout(_prompts(GroupKey("ipd", "train", "Mixed", 2)), trainer)
    assert first["completion_ids"] != second["completion_ids"]  # the credited episodes differ
    assert first["measured_payoff"] != second["measured_payoff"]
    credited = [credited_components(out, "auxiliary") for out in (first, second)]
    weights = params.games["ipd"].penalty_weights.model_dump()
    for one, other in zip(*credited, strict=True):
        assert one.penalty(weights) == other.penalty(weights)  # same auxiliary seeds, same penalty
    # the auxiliary episodes change with the rollout's place in the batch and with the step
    assert len({c.penalty(weights) for c in credited[0]}) > 1
    trainer.state.global_step = 1
    later_fields = rollout(_prompts(GroupKey("ipd", "train", "TitForTat", 1)), trainer)
    later = credited_components(later_fields, "auxiliary")
    assert [c.penalty(weights) for c in later] != [c.penalty(weights) for c in credited[0]]


def test_model_rollouts_are_reseeded_per_step(tmp_path):
    params, tokenizer, trainer = _trainer(tmp_path)
    rollout = GroupRollout(params, "ipd", "per_rollout", 0, tokenizer)
    prompts = _prompts(GroupKey("ipd", "train", "TitForTat", 3))
    first = rollout(prompts, trainer)["completion_ids"]
    assert rollout(prompts, trainer)["completion_ids"] == first  # a resumed step replays its episodes
    trainer.state.global_step = 1
    assert rollout(prompts, trainer)["completion_ids"] != first
    assert len(set(map(tuple, first))) > 1  # the G rollouts of a group differ by sampling alone


def test_a_prompt_that_is_not_a_group_key_is_refused(tmp_path):
    params, tokenizer, trainer = _trainer(tmp_path)
    rollout = GroupRollout(params, "ipd", "per_rollout", 0, tokenizer)
    with pytest.raises(ValueError, match="not a SEPO group key"):
        rollout(["hello"], trainer)
    with pytest.raises(ValueError, match="not a ipd group"):
        rollout([GroupKey("kuhn", "train", "NashApprox", 1).prompt], trainer)
