"""One SEPO-GRPO run: from the SFT policy to checkpoints, with resume after a crash.

``RunPlan`` fixes what a run is (domain, penalty mode, advantage scaling,
step budget, the domain's GRPO hyperparameters); ``train`` builds TRL's
trainer around ``GroupRollout`` and the four reward functions, claims the
checkpoint folder (``checkpoints.claim``) and resumes from its last
complete checkpoint, if any.

Trainer settings that are not params, and why:

- one optimizer step per generation batch (``steps_per_generation`` 1,
  ``num_iterations`` 1, no accumulation): the update is on-policy, so the
  clipped ratio starts at 1 and TRL needs no sampling log-probs;
- ``loss_type="grpo"`` (SPEC: TRL's GRPO loss) and a constant learning rate;
- TRL's ``temperature`` is the sampling temperature, so the trained
  log-probs are those of the distribution the rollouts sampled from;
- a checkpoint every ``sepo.save_steps`` and at the last step, all kept
  (model selection scores each); bf16 only on a GPU that supports it;
  activation checkpointing off (tiny models; it only costs time).

``grpo.use_vllm`` / ``grpo.vllm_mode`` reach TRL through ``vllm_settings``.
Under ``accelerate launch`` (README, "Running on N GPUs") every process
trains its own groups of a step; the main process claims the checkpoint
folder and exports the selected adapter.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sepo.checkpoints import claim, complete_checkpoints, model_fingerprint, within_budget
from sepo.config import GRPOParams, Params
from sepo.reward import COMPONENTS, PENALTY_MODES, SCALE_REWARDS
from sepo.training.groups import group_keys
from sepo.training.rewards import reward_functions, reward_weights
from sepo.training.rollout import GroupRollout, PolicyFactory

#: sepo params added after runs were recorded: at these values a run trains as it did before the key existed
IDENTITY_DEFAULTS = {"group_weighting": "opponent"}


@dataclass(frozen=True)
class RunPlan:
    """What one run trains: the stage's params, or an ablation arm's overrides of them."""

    game: str
    mode: str
    scale_rewards: str
    max_steps: int
    grpo: GRPOParams

    @classmethod
    def from_params(cls, params: Params, game: str, *, mode: str | None = None,
                    scale_rewards: str | None = None, max_steps: int | None = None) -> RunPlan:
        if game not in params.games:
            raise ValueError(f"unknown game {game!r}; valid: {', '.join(params.games)}")
        grpo = params.grpo.for_game(game)
        plan = cls(game=game, mode=mode or params.penalty.mode,
                   scale_rewards=scale_rewards or grpo.scale_rewards,
                   max_steps=max_steps or params.sepo.max_steps, grpo=grpo)
        if plan.mode not in PENALTY_MODES:
            raise ValueError(f"unknown penalty mode {plan.mode!r}; valid: {', '.join(PENALTY_MODES)}")
        if plan.scale_rewards not in SCALE_REWARDS:
            raise ValueError(f"unknown scale_rewards {plan.scale_rewards!r}; "
                             f"valid: {', '.join(SCALE_REWARDS)}")
        return plan

    def identity(self, params: Params, model_path: str | Path) -> dict[str, Any]:
        """Everything that makes two runs the same run (budgets excluded, see ``checkpoints``)."""
        budgets = {"max_steps", "save_steps", "selection_episodes", "num_threads"}
        # a knob added after runs were recorded is left out at the value those runs trained with,
        # so their checkpoints stay theirs
        unrecorded = {k for k, v in IDENTITY_DEFAULTS.items() if getattr(params.sepo, k) == v}
        sepo = params.sepo.model_dump(exclude=budgets | unrecorded)
        # which engine samples and in what batches, not what is sampled: changing them keeps the checkpoints
        backend = {"use_vllm", "vllm_mode"}
        decoding = {"batch_size", "fast_decode", "fast_decode_slots", "fast_decode_capacity"}
        return {
            "game": self.game, "mode": self.mode, "scale_rewards": self.scale_rewards,
            "grpo": self.grpo.model_dump(exclude={"game_overrides", "scale_rewards", *backend}),
            "sepo": sepo, "generation": params.generation.model_dump(exclude=decoding),
            "game_params": params.games[self.game].model_dump(),
            "model": str(model_path), "model_fingerprint": model_fingerprint(model_path),
        }


@dataclass
class TrainOutcome:
    """A finished run: its trainer (holding the final policy), where it resumed, its step log."""

    trainer: Any
    resumed_from: int
    history: list[dict[str, Any]]


def grpo_config(params: Params, plan: RunPlan, output_dir: str | Path):
    """TRL's GRPOConfig for ``plan`` (see the module doc for the fixed choices)."""
    import torch
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    group_size = plan.grpo.num_generations
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=plan.max_steps,
        per_device_train_batch_size=group_size * params.sepo.groups_per_step,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=group_size,
        learning_rate=plan.grpo.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=plan.grpo.max_grad_norm,
        beta=plan.grpo.beta,
        epsilon=plan.grpo.epsilon,
        loss_type="grpo",
        scale_rewards=plan.scale_rewards,
        reward_weights=reward_weights(params.games[plan.game].penalty_weights.model_dump()),
        temperature=params.generation.temperature,
        seed=params.sepo.seed,
        save_strategy="steps",
        save_steps=params.sepo.save_steps,
        save_total_limit=None,
        logging_steps=1,
        report_to=[],
        disable_tqdm=not sys.stderr.isatty(),
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        activation_checkpointing=False,
        **vllm_settings(params, plan),
    )


def vllm_settings(params: Params, plan: RunPlan) -> dict[str, Any]:
    """TRL's vLLM switches from ``grpo.use_vllm`` / ``grpo.vllm_mode``; nothing when vLLM is off.

    With vLLM on, TRL's engine gets ``params.generation``'s nucleus settings
    and token cap; its importance-sampling correction is off because
    ``GroupRollout`` returns no sampling log-probs (TRL would fail on None).
    """
    if not plan.grpo.use_vllm:
        return {}
    g = params.generation
    return {"use_vllm": True, "vllm_mode": plan.grpo.vllm_mode, "top_p": g.top_p, "top_k": g.top_k,
            "max_completion_length": g.max_new_tokens, "vllm_importance_sampling_correction": False}


def build_trainer(params: Params, plan: RunPlan, model, tokenizer, output_dir: str | Path,
                  policy_factory: PolicyFactory | None = None):
    """A ``SepoGRPOTrainer`` for ``plan`` with a fresh LoRA adapter on ``model``."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from sepo.training.trainer import SepoGRPOTrainer

    class SaveLastStep(TrainerCallback):
        """The last step is always a checkpoint, so model selection sees the final policy."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = True
            return control

    if params.sepo.num_threads:
        torch.set_num_threads(params.sepo.num_threads)
    keys = group_keys(params, plan.game, plan.mode, params.sepo.seed)
    return SepoGRPOTrainer(
        model=model,
        reward_funcs=reward_functions(plan.mode),
        args=grpo_config(params, plan, output_dir),
        train_dataset=Dataset.from_dict({"prompt": [k.prompt for k in keys]}),
        processing_class=tokenizer,
        peft_config=params.sepo.lora.peft_config(),
        rollout_func=GroupRollout(params, plan.game, plan.mode, params.sepo.seed, tokenizer, policy_factory),
        callbacks=[SaveLastStep()],
        penalty_mode=plan.mode,
        penalty_weights=params.games[plan.game].penalty_weights.model_dump(),
    )


def load_policy_model(params: Params, model_path: str | Path):
    """(model, tokenizer) of the SFT policy, on the GPU when there is one."""
    import torch

    from sepo.models.loading import load_model_and_tokenizer

    device = "cuda" if torch.cuda.is_available() else None
    return load_model_and_tokenizer(model_path, trust_remote_code=params.model.trust_remote_code,
                                    device=device, dtype="auto" if device else None)


def train(params: Params, plan: RunPlan, model_path: str | Path, checkpoints: str | Path,
          policy_factory: PolicyFactory | None = None) -> TrainOutcome:
    """Train ``plan`` from the model at ``model_path``, resuming from this run's ``checkpoints``.

    Under ``accelerate launch`` every process runs this; the main one claims
    the folder first (it may delete another run's checkpoints), then the
    others read the same checkpoints to resume from.
    """
    model, tokenizer = load_policy_model(params, model_path)
    trainer = build_trainer(params, plan, model, tokenizer, checkpoints, policy_factory)
    with trainer.accelerator.main_process_first():
        resumable = claim(checkpoints, plan.identity(params, model_path))
    found = complete_checkpoints(checkpoints) if resumable else []
    past = [step for step, _ in found if step > plan.max_steps]
    if past:  # an earlier run went further: train and select within this budget, the rest stays on disk
        print(f"sepo: {plan.game}: checkpoints at steps {', '.join(map(str, past))} lie past max_steps "
              f"{plan.max_steps}; they are kept but neither resumed nor selected", flush=True)
    found = within_budget(found, plan.max_steps)
    last = found[-1] if found else None
    if last is not None and last[0] >= plan.max_steps:
        # nothing left to train; the Trainer would still run one step past max_steps when resumed there
        print(f"sepo: {plan.game} already trained to step {last[0]} ({last[1].name})", flush=True)
        log_history = json.loads((last[1] / "trainer_state.json").read_text())["log_history"]
        return TrainOutcome(trainer=trainer, resumed_from=last[0], history=step_rows(log_history))
    if last is not None:
        print(f"sepo: resuming {plan.game} from {last[1].name} (step {last[0]} of {plan.max_steps})",
              flush=True)
    trainer.train(resume_from_checkpoint=str(last[1]) if last else None)
    return TrainOutcome(trainer=trainer, resumed_from=last[0] if last else 0,
                        history=step_rows(trainer.state.log_history))


#: TRL / SepoGRPOTrainer log keys -> column names of the step log
LOG_COLUMNS = {
    "credited/total/mean": "reward", "credited/total/std": "reward_std",
    **{f"credited/{c}/{s}": f"{c}_{s}" for c in COMPONENTS for s in ("mean", "std")},
    **{f"measured/{c}": f"measured_{c}" for c in COMPONENTS},
    "zero_std_share": "zero_std_share", "kl": "kl", "invalid_rate": "invalid_rate",
    "penalty_grad_norm": "penalty_grad_norm", "loss": "loss", "grad_norm": "grad_norm",
    "entropy": "entropy", "step_time": "step_time", "rollout_time": "rollout_time",
    # a BestResponse opponent (sepo.training.adaptive): refreshed this step, its bound table's NashConv
    "best_response_refresh": "best_response_refresh", "best_response_nash_conv": "best_response_nash_conv",
}


def step_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per logged training step (resumed runs included: the history is in the checkpoint)."""
    rows = []
    for entry in log_history:
        if "reward" not in entry:
            continue
        row: dict[str, Any] = {"step": int(entry["step"])}
        for key, column in LOG_COLUMNS.items():
            value = entry.get(key)
            row[column] = float(value) if value is not None else float("nan")
        rows.append(row)
    return rows


def plan_summary(plan: RunPlan) -> dict[str, Any]:
    """The plan as JSON-able data for metrics files."""
    return {**asdict(plan), "grpo": plan.grpo.model_dump(exclude={"game_overrides"})}


@dataclass
class RunResult:
    """A trained and selected run, summarised for metrics files."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    outcome: TrainOutcome


def train_and_select(params: Params, plan: RunPlan, model_path: str | Path, checkpoints: str | Path,
                     out: str | Path, policy_factory: PolicyFactory | None = None) -> RunResult:
    """Train (or resume) ``plan``, score its checkpoints, export the best adapter to ``out``."""
    from sepo.training.selection import export_policy, select_checkpoint

    outcome = train(params, plan, model_path, checkpoints, policy_factory)
    trainer = outcome.trainer
    model = trainer.accelerator.unwrap_model(trainer.model)
    # every process scores the same episodes with the same weights, so all agree on the best step
    selection = select_checkpoint(params, plan.game, model, trainer.processing_class, checkpoints, plan.max_steps)
    if trainer.accelerator.is_main_process:
        export_policy(selection.best_path, out, base=model_path)
    trainer.accelerator.wait_for_everyone()
    history = outcome.history
    timed = [row["step_time"] for row in history if not math.isnan(row["step_time"])]
    summary = {
        "plan": plan_summary(plan),
        "steps": history[-1]["step"] if history else 0,
        "resumed_from_step": outcome.resumed_from,
        "final": {k: None if isinstance(v, float) and math.isnan(v) else v
                  for k, v in (history[-1] if history else {}).items()},
        "mean_step_seconds": sum(timed) / len(timed) if timed else None,
        "selection": {"training_pool_safety": {str(s): j for s, j in selection.scores.items()},
                      "best_step": selection.best_step},
    }
    return RunResult(summary=summary, history=history, outcome=outcome)

