"""``SepoGRPOTrainer``: TRL's GRPOTrainer plus the diagnostics SPEC section 5 asks for.

TRL does everything else (rollouts through ``rollout_func``, the weighted
reward functions, group/batch advantage scaling, the clipped loss with KL to
the adapter-disabled SFT policy, checkpoints).  Two things its API cannot
give, hence this subclass:

- **The penalty-gradient norm.**  It needs a second loss on the same batch,
  with the advantages replaced by the penalty's share of them
  (``rewards.penalty_advantages``), differentiated without touching the
  optimizer's gradients.  Reward functions only return numbers and
  callbacks see no tensors, so it lives in ``_compute_loss``: TRL's own loss
  is evaluated with those advantages and β = 0 (the norm is of the policy
  gradient; the KL term is not a penalty), its gradient taken with
  ``torch.autograd.grad``, summed over the micro-batches of the step and
  logged as ``penalty_grad_norm``.  When every penalty advantage is exactly
  0 (always under ``constant`` and ``none``) no pass is run and the norm is
  exactly 0.  The second loss reuses the training loss's forward pass
  (``_get_per_token_logps_and_entropies`` hands back the log-probs it just
  computed, graph and all): it is the gradient of the penalty's part of the
  very loss the optimizer steps on, LoRA dropout masks included, and a
  step runs one policy forward instead of two (measured side by side,
  ``benchmarks/sepo_step.py``: a tiny-profile step ×0.96, ×0.88 less its
  rollout; the pass only runs when a penalty advantage is non-zero).
- **Per-step batch diagnostics** that need every rollout's fields together:
  the share of zero-std groups of the total reward (TRL's
  ``frac_reward_zero_std`` measures the batch std under batch scaling), the
  invalid-action rate, the measured components per pool and the rollout
  time.  They are computed in ``_generate_and_score_completions`` from the
  fields the rollout attached to the batch.

Every diagnostic goes to TRL's metric store, so it is averaged and logged
like TRL's own (``kl``, ``entropy``).

One change to TRL's arithmetic, none to its maths: ``_calculate_rewards``
returns each component shifted by its batch mean
(``rewards.shifted_by_batch_mean``).  Advantages and stds are unchanged, but
a penalty that is the same for every rollout (``constant``) is then exactly
0, so ``constant`` and ``none`` end with byte-identical adapters.  TRL's
``rewards/<component>`` and ``reward`` logs therefore read 0-mean values;
the step log's reward columns are the credited components' own means and
stds, logged here as ``credited/<component>/mean`` and ``credited/total/...``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from trl import GRPOTrainer

from sepo.reward import zero_std_share
from sepo.training.rewards import (
    credited_components,
    credited_statistics,
    measured_means,
    penalty_advantages,
    shifted_by_batch_mean,
)


class SepoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that logs the SEPO diagnostics (see module doc)."""

    def __init__(self, *args: Any, penalty_mode: str, penalty_weights: dict[str, float],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.penalty_mode = penalty_mode
        self.penalty_weights = dict(penalty_weights)
        self._penalty_gradient: list[torch.Tensor] | None = None
        #: while the training loss runs: its forward's outputs are kept for the penalty loss
        self._keep_forward = False
        self._kept_forward: tuple | None = None
        #: while the penalty loss runs: the outputs handed back in place of a new forward
        self._replayed_forward: tuple | None = None

    # -- rewards ----------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list) -> torch.Tensor:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        shifted = shifted_by_batch_mean(rewards_per_func.detach().cpu().numpy())
        return torch.tensor(shifted, dtype=rewards_per_func.dtype, device=rewards_per_func.device)

    # -- batch diagnostics ------------------------------------------------------------
    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        # TRL merges the rollout's per-episode fields into ``inputs`` on the way
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        fields = {key: [row[key] for row in inputs] for key in inputs[0] if key != "prompt"}
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        credited = credited_components(fields, self.penalty_mode)
        totals = [c.total(self.penalty_weights) for c in credited]
        metrics = self._metrics[mode]
        metrics["zero_std_share"].append(zero_std_share(totals, group_size))
        for key, value in credited_statistics(credited, self.penalty_weights).items():
            metrics[key].append(value)
        decisions = sum(fields["decisions"])
        metrics["invalid_rate"].append(sum(fields["invalid_decisions"]) / decisions if decisions else 0.0)
        for component, value in measured_means(fields).items():
            metrics[f"measured/{component}"].append(value)
        metrics["rollout_time"].append(getattr(self.rollout_func, "last_seconds", math.nan))
        output["penalty_advantages"] = torch.tensor(
            penalty_advantages(credited, self.penalty_weights, group_size, self.scale_rewards),
            dtype=output["advantages"].dtype, device=output["advantages"].device)
        return output

    # -- penalty-gradient norm --------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, *args: Any, **kwargs: Any):
        if self._replayed_forward is not None:
            return self._replayed_forward
        outputs = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._keep_forward:
            self._kept_forward = outputs
        return outputs

    def _compute_loss(self, model, inputs: dict[str, Any]) -> torch.Tensor:
        wanted = self.model.training and "penalty_advantages" in inputs
        self._keep_forward = wanted
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self._keep_forward = False
            forward, self._kept_forward = self._kept_forward, None
        if wanted:
            self._accumulate_penalty_gradient(model, inputs, forward)
            if (self._step + 1) % self.current_gradient_accumulation_steps == 0:
                self._metrics["train"]["penalty_grad_norm"].append(self._pop_penalty_gradient_norm())
        return loss

    def penalty_loss(self, model, inputs: dict[str, Any], forward: tuple | None = None) -> torch.Tensor:
        """TRL's loss on ``inputs`` with the penalty-only advantages and no KL term, logging nothing.

        ``forward``: the training loss's own ``_get_per_token_logps_and_entropies``
        outputs on ``inputs``, used in place of a new forward pass (module doc).
        """
        saved_beta = self.beta
        saved_metrics = {key: len(values) for key, values in self._metrics["train"].items()}
        self.beta = 0.0
        self._replayed_forward = forward
        try:
            return super()._compute_loss(model, {**inputs, "advantages": inputs["penalty_advantages"]})
        finally:
            self._replayed_forward = None
            self.beta = saved_beta
            for key in list(self._metrics["train"]):
                if key in saved_metrics:
                    del self._metrics["train"][key][saved_metrics[key]:]
                else:
                    del self._metrics["train"][key]

    def _accumulate_penalty_gradient(self, model, inputs: dict[str, Any], forward: tuple | None) -> None:
        parameters = [p for p in model.parameters() if p.requires_grad]
        if self._penalty_gradient is None:
            self._penalty_gradient = [torch.zeros_like(p) for p in parameters]
        if not torch.any(inputs["penalty_advantages"] != 0):
            return
        # the graph is the training loss's too: kept for the optimizer's backward that follows
        grads = torch.autograd.grad(self.penalty_loss(model, inputs, forward), parameters,
                                    retain_graph=forward is not None, allow_unused=True)
        for total, grad in zip(self._penalty_gradient, grads, strict=True):
            if grad is not None:
                total += grad.detach()

    def _pop_penalty_gradient_norm(self) -> float:
        gradient, self._penalty_gradient = self._penalty_gradient, None
        if not gradient:
            return 0.0
        return float(torch.sqrt(sum(g.double().pow(2).sum() for g in gradient)))
