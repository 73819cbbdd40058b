"""One GRPO batch through the real trainer: constant == none exactly; per_rollout moves the penalty.

The batch is three IPD groups (train, exploit, collusive pools) whose four
rollouts are played by four different scripted agents, so every group has
rewards that differ; the loss is TRL's, on a tiny random model with a fresh
LoRA adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sepo.config import parse_params
from sepo.rollout import AgentReply, DecisionRequest
from sepo.training.groups import GroupKey
from sepo.training.run import RunPlan, build_trainer, load_policy_model
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("AlwaysCooperate", "AlwaysDefect", "TitForTat", "AlternatingDefect")
GROUP_SIZE = len(AGENTS)
KEYS = (GroupKey("ipd", "train", "TitForTat", 11), GroupKey("ipd", "exploit", "AlwaysDefect", 12),
        GroupKey("ipd", "collusive", "AlwaysCooperate", 13))


def training_params(**sepo):
    """The committed params with this batch's shape, 4-round IPD and short replies (short sequences)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["ipd"]["rounds"] = 4
    raw["generation"]["max_new_tokens"] = 16
    raw["sepo"].update({"groups_per_step": len(KEYS), "num_threads": 1, **sepo})
    raw["grpo"]["num_generations"] = GROUP_SIZE
    return parse_params(raw)


class RolloutIndexAgents:
    """Rollout ``i`` of every group is played by scripted ``AGENTS[i % G]``: groups with varied rewards."""

    def __init__(self, params) -> None:
        self.strategies = [params.strategy("ipd", name) for name in AGENTS]

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        replies = []
        for r in requests:
            action = self.strategies[r.episode_index % GROUP_SIZE].act(r.view, r.agent_rng)
            replies.append(AgentReply(text=f"I weigh the history.\nAction: {action}", action=action))
        return replies


def scored_batch(mode: str, scale: str, folder: Path):
    """(trainer, TRL's scored batch) for the fixed groups under ``mode`` and ``scale``."""
    params = training_params()
    plan = RunPlan.from_params(params, "ipd", mode=mode, scale_rewards=scale, max_steps=1)
    model, tokenizer = load_policy_model(params, tiny_model_dir())
    trainer = build_trainer(params, plan, model, tokenizer, folder,
                            policy_factory=lambda _trainer, _seed: RolloutIndexAgents(params))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = [{"prompt": key.prompt} for key in KEYS for _ in range(GROUP_SIZE)]
    return trainer, trainer._generate_and_score_completions(inputs)


def adapter_parameters(trainer) -> list[torch.Tensor]:
    return [p for p in trainer.model.parameters() if p.requires_grad]


def loss_gradient(trainer, batch) -> list[torch.Tensor]:
    """The gradient of the training loss w.r.t. the adapter (what the optimizer would step on)."""
    torch.manual_seed(0)  # the same LoRA dropout masks for every mode
    loss = trainer.compute_loss(trainer.model, batch)
    return list(torch.autograd.grad(loss, adapter_parameters(trainer)))


@pytest.mark.parametrize("scale", ["batch", "group"])
def test_constant_penalties_give_the_advantages_and_gradient_of_payoff_only(tmp_path, scale):
    modes = ("none", "constant", "per_rollout")
    results = {mode: scored_batch(mode, scale, tmp_path / mode) for mode in modes}
    advantages = {mode: batch["advantages"] for mode, (_, batch) in results.items()}
    gradients = {mode: loss_gradient(trainer, batch) for mode, (trainer, batch) in results.items()}
    # bit for bit, not within rounding: the constant penalty is exactly 0 after the batch shift
    assert torch.equal(advantages["constant"], advantages["none"])
    for constant, none in zip(gradients["constant"], gradients["none"], strict=True):
        assert torch.equal(constant, none)
    # the batch has signal: per-rollout penalties do change the advantages and the gradient
    assert not torch.allclose(advantages["per_rollout"], advantages["none"], atol=1e-3)
    pairs = zip(gradients["per_rollout"], gradients["none"], strict=True)
    assert any(not torch.allclose(p, n, atol=1e-6) for p, n in pairs)
    assert sum(float(g.abs().sum()) for g in gradients["none"]) > 0


def test_penalty_gradient_norm_is_zero_for_constant_and_none_and_positive_per_rollout(tmp_path):
    norms = {}
    for mode in ("none", "constant", "per_rollout"):
        trainer, batch = scored_batch(mode, "batch", tmp_path / mode)
        trainer.compute_loss(trainer.model, batch)
        norms[mode] = trainer._metrics["train"]["penalty_grad_norm"][-1]
    assert norms["none"] == 0.0 and norms["constant"] == 0.0
    assert norms["per_rollout"] > 0.0


def test_step_diagnostics_from_the_batch(tmp_path):
    trainer, batch = scored_batch("per_rollout", "batch", tmp_path)
    logged = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    assert logged["invalid_rate"] == 0.0  # scripted replies always parse
    assert logged["zero_std_share"] == 0.0  # four different agents in every group
    assert logged["measured/collusion"] == pytest.approx(np.mean([0.0, 1.0, 0.0, 0.5]))
    assert logged["credited/exploit/mean"] > 0
    # TRL's own component logs see the batch-shifted columns (0-mean); the credited ones keep the sizes
    assert logged["rewards/exploit/mean"] == pytest.approx(0.0, abs=1e-6)
    penalties = sum(w * logged[f"credited/{k}/mean"] for k, w in trainer.penalty_weights.items())
    assert logged["credited/total/mean"] == pytest.approx(logged["credited/payoff/mean"] - penalties)
    assert batch["penalty_advantages"].shape == batch["advantages"].shape
    assert batch["tool_mask"].sum() < batch["completion_mask"].sum()  # environment turns are masked out
    trainer.compute_loss(trainer.model, batch)
    # a fresh adapter (B = 0) is the SFT policy itself: the KL to the reference starts at 0
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(0.0, abs=1e-6)


def test_the_penalty_gradient_reuses_the_training_forward_and_equals_a_fresh_one(tmp_path):
    trainer, batch = scored_batch("per_rollout", "batch", tmp_path)
    forwards = []
    hook = trainer.model.register_forward_hook(lambda *_: forwards.append(1))
    torch.manual_seed(0)
    trainer.compute_loss(trainer.model, batch)
    hook.remove()
    assert len(forwards) == 1  # the penalty loss ran on the training loss's forward, not its own
    shared = trainer._metrics["train"]["penalty_grad_norm"][-1]
    torch.manual_seed(0)  # a fresh forward with the same LoRA dropout masks
    fresh = torch.autograd.grad(trainer.penalty_loss(trainer.model, batch), adapter_parameters(trainer),
                                allow_unused=True)
    fresh_norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in fresh if g is not None)))
    assert shared > 0.0
    assert shared == pytest.approx(fresh_norm, rel=1e-5)


def test_the_penalty_pass_leaves_the_training_gradient_as_trl_computes_it(tmp_path):
    from trl import GRPOTrainer

    trainer, batch = scored_batch("per_rollout", "batch", tmp_path)
    ours = loss_gradient(trainer, batch)  # with the penalty pass on the shared graph
    torch.manual_seed(0)
    loss = GRPOTrainer._compute_loss(trainer, trainer.model, batch)  # TRL's loss alone
    theirs = torch.autograd.grad(loss, adapter_parameters(trainer))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
