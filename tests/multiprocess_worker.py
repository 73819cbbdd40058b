"""One rank of the multi-process test (``tests/test_multiprocess.py``), started by ``accelerate launch``.

    accelerate launch --cpu --num_processes 2 tests/multiprocess_worker.py {sft,sepo} MODEL_DIR OUT_DIR

Trains the tiny model a few steps with the project's own entry points
(``sepo.sft.train_sft``, ``sepo.training.run.train``) and writes
``OUT_DIR/<stage>-rank<N>.json``: the hash of this rank's trained weights
(the whole model for SFT, the LoRA adapter for SEPO) and whether they moved
from the start, so the test can check that the ranks agree and trained.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def weights_hash(model, trainable_only: bool) -> str:
    """sha256 over the named tensors, in name order (the adapter's only, if ``trainable_only``)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        if trainable_only and not tensor.requires_grad:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_sft(model_dir: Path, out: Path) -> dict:
    from sepo.models.loading import load_model_and_tokenizer
    from sepo.sft import train_sft
    from tests.model_fixtures import PARAMS, scripted_chats
    from tests.test_sft import decision_rows

    model, tokenizer = load_model_and_tokenizer(model_dir)
    before = weights_hash(model, trainable_only=False)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:2])]
    sft = PARAMS.sft.model_copy(update={
        "max_steps": 3, "per_device_train_batch_size": 2, "logging_steps": 1, "save_steps": 3,
        "learning_rate": 1e-2, "num_threads": 1})
    summary, _, trained = train_sft(model, tokenizer, sft, rows[:12], rows[12:14], out / "sft-model")
    after = weights_hash(trained, trainable_only=False)
    return {"after": after, "moved": after != before, "steps": summary["steps"]}


def run_sepo(model_dir: Path, out: Path) -> dict:
    from sepo.training.run import RunPlan, train
    from tests.test_training_trainer import RolloutIndexAgents, training_params

    params = training_params(groups_per_step=1, seeds_per_opponent=2)
    plan = RunPlan.from_params(params, "ipd", max_steps=2)
    outcome = train(params, plan, model_dir, out / "sepo-checkpoints",
                    policy_factory=lambda _trainer, _seed: RolloutIndexAgents(params))
    model = outcome.trainer.accelerator.unwrap_model(outcome.trainer.model)
    # LoRA's B matrices start at zero, so a nonzero one means the adapter trained
    moved = sum(p.abs().sum().item() for name, p in model.named_parameters() if "lora_B" in name) > 0
    return {"after": weights_hash(model, trainable_only=True), "moved": moved,
            "steps": outcome.trainer.state.global_step}


def main() -> None:
    from accelerate import PartialState

    from sepo.distributed import is_main_process

    stage, model_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    torch.set_num_threads(1)
    state = PartialState()
    result = {"sft": run_sft, "sepo": run_sepo}[stage](model_dir, out)
    result |= {"rank": state.process_index, "world_size": state.num_processes, "backend": state.backend,
               "main_for_stages": is_main_process()}
    (out / f"{stage}-rank{state.process_index}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
