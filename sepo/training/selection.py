"""Model selection: the checkpoint with the best training-pool safety J (SPEC section 5).

"Training pools" are the pools SEPO trains against (train, exploit,
collusive); the shift pool stays held out for evaluation.  J is SPEC
section 4's safety with the domain's report weights, so selection ranks
checkpoints by the number the evaluation reports.  Every checkpoint plays
the same episodes (same seeds, same sampling seed), so differences between
checkpoints are the policy's, not the dice's.  Ties go to the earlier
checkpoint, the one closer to the SFT policy.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sepo.checkpoints import complete_checkpoints, within_budget
from sepo.config import Params
from sepo.evaluation import play_binding_adaptive
from sepo.io import write_text_atomic
from sepo.metrics import safety
from sepo.models.loading import ADAPTER_CONFIG
from sepo.rollout import EpisodeSpec
from sepo.training.groups import TRAINING_POOLS, derived_seed
from sepo.training.rollout import sampling_settings

#: checkpoint files that restore training, not the policy
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin")


@dataclass(frozen=True)
class Selection:
    """Each checkpoint's training-pool J and the chosen one."""

    scores: dict[int, float]
    best_step: int
    best_path: Path


def selection_specs(params: Params, game: str, episodes: int, seed: int) -> list[EpisodeSpec]:
    """The episodes every checkpoint is scored on: ``episodes`` per training-pool opponent."""
    built = params.game(game)
    return [EpisodeSpec(built, opponent, pool,
                        derived_seed("sepo-selection", seed, game, pool, opponent.name, i))
            for pool in TRAINING_POOLS for opponent in params.pool(game, pool) for i in range(episodes)]


def training_pool_safety(params: Params, game: str, model, tokenizer) -> float:
    """Safety J of ``model`` on the selection episodes."""
    from sepo.policies.model import ModelPolicy

    seed = params.sepo.seed
    policy = ModelPolicy(model, tokenizer, sampling_settings(params),
                         seed=derived_seed("sepo-selection-sampling", seed))
    was_training = model.training
    model.eval()
    try:
        # a BestResponse in the pools plays against this checkpoint's own table, as in evaluation
        specs = selection_specs(params, game, params.sepo.selection_episodes, seed)
        played = play_binding_adaptive(params, {game: specs}, policy, batch_size=params.generation.batch_size)[0][game]
    finally:
        model.train(was_training)
    weights = params.games[game].report_weights.model_dump()
    return safety(params.game(game), [p.record for p in played], weights)


def load_adapter(model, checkpoint: str | Path) -> None:
    """Put a checkpoint's LoRA weights into ``model`` (a PEFT model with the same adapter config)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(Path(checkpoint) / "adapter_model.safetensors")))


def select_checkpoint(params: Params, game: str, model, tokenizer, checkpoints: str | Path,
                      max_steps: int | None = None) -> Selection:
    """Score every complete checkpoint in ``checkpoints`` up to ``max_steps`` (None: all).

    ``model`` ends holding the last scored one's weights.  Checkpoints past
    the budget (left by an earlier, longer run) are not candidates.
    """
    found = complete_checkpoints(checkpoints)
    if max_steps is not None:
        found = within_budget(found, max_steps)
    if not found:
        raise ValueError(f"no complete checkpoint in {checkpoints}" +
                         (f" at or below step {max_steps}" if max_steps is not None else ""))
    scores: dict[int, float] = {}
    for step, path in found:
        load_adapter(model, path)
        scores[step] = training_pool_safety(params, game, model, tokenizer)
    best_step = max(scores, key=lambda s: (scores[s], -s))
    return Selection(scores=scores, best_step=best_step, best_path=dict(found)[best_step])


def export_policy(checkpoint: str | Path, out: str | Path, base: str | Path | None = None) -> None:
    """Copy a checkpoint's adapter and tokenizer (not its optimizer or RNG state) to ``out``.

    With ``base`` (the model the adapter was trained on) the export records
    it relative to ``out`` with its content hash (``sepo.models.adapter_base``),
    so the adapter loads from any directory and only onto that model.
    The adapter config's ``target_modules`` are sorted
    (``canonical_adapter_config``): PEFT keeps them as a set, so identical
    retrains would otherwise differ in the released folder's hash.
    """
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for file in Path(checkpoint).iterdir():
        if file.is_file() and file.name not in TRAINING_STATE_FILES and not file.name.startswith("rng_state"):
            shutil.copy2(file, out / file.name)
    canonical_adapter_config(out / ADAPTER_CONFIG)
    if base is not None:
        from sepo.models.adapter_base import record_adapter_base

        record_adapter_base(out, base)


def canonical_adapter_config(path: str | Path) -> None:
    """Rewrite a PEFT ``adapter_config.json`` with its ``target_modules`` list sorted.

    PEFT stores the targets as a set and writes them in the process's hash
    order, so two byte-identical adapters got configs (and DVC hashes) that
    differ.  The order means nothing to PEFT; the file keeps PEFT's own
    layout (2-space indent, sorted keys, no final newline).  A missing file is left alone.
    """
    path = Path(path)
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True))  # never half a config
