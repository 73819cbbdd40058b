"""The SEPO adapter's model card: written by the `sepo` stage beside the adapter, read back by huggingface_hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from sepo.cards import sepo_adapter_card, write_model_card
from sepo.config import load_params

ROOT = Path(__file__).resolve().parents[1]


def _summary(params, game: str) -> dict:
    from sepo.training.run import RunPlan, plan_summary

    plan = RunPlan.from_params(params, game)
    return {"plan": plan_summary(plan), "steps": plan.max_steps, "resumed_from_step": 20,
            "final": {"reward": 0.9}, "mean_step_seconds": 3.7,
            "selection": {"best_step": 30, "training_pool_safety": {"10": 1.37, "20": 1.65, "30": 1.6531, "40": 1.625}}}


def test_adapter_card_names_method_settings_steps_and_selection(tmp_path):
    params = load_params(ROOT / "params.yaml")
    summary = _summary(params, "ipd")
    card = sepo_adapter_card("ipd", summary, parent="data/models/sft", seed=0, lora=params.sepo.lora.model_dump(),
                             base_model="Qwen/Qwen3-0.6B", evaluation_file="metrics/eval/sepo/ipd.json")
    loaded = ModelCard.load(write_model_card(tmp_path / "ipd", card))
    data = loaded.data
    assert data.library_name == "peft" and data.base_model == "Qwen/Qwen3-0.6B" and data.license == "apache-2.0"
    assert {"sepo", "grpo", "lora", "ipd"} <= set(data.tags) and data.eval_results is None
    text = loaded.text
    assert "| `method` | SEPO-GRPO (TRL GRPOTrainer, LoRA) |" in text
    assert f"| `penalty.mode` | {params.penalty.mode} |" in text
    assert f"| `steps` | {params.sepo.max_steps} of {params.sepo.max_steps} |" in text
    assert "| `resumed from step` | 20 |" in text
    assert f"| `grpo.learning_rate` | {params.grpo.learning_rate:.4g} |" in text
    assert "| `lora.target_modules` | q_proj, k_proj, v_proj, o_proj |" in text and "| `sepo.seed` | 0 |" in text
    assert "## Checkpoint selection" in text and "checkpoint of step 30" in text
    assert "| **30** | 1.6531 |" in text and "| 10 | 1.3700 |" in text
    selection = text[text.index("## Checkpoint selection"):]
    assert selection.index("| 10 |") < selection.index("| 20 |") < selection.index("| **30** |") \
        < selection.index("| 40 |")
    assert "`metrics/eval/sepo/ipd.json`" in text
    assert 'PeftModel.from_pretrained' in text and 'from_pretrained("data/models/sft")' in text


def test_sepo_stage_replaces_peft_template_with_the_card(tmp_path, monkeypatch):
    """The stage's own code path, with training replaced by a finished run's summary (training takes minutes)."""
    import sepo.training.run as run
    from stages import sepo_train

    sft = ROOT / "data" / "models" / "sft"
    if not (sft / "config.json").is_file():
        pytest.skip("needs the pipeline's data/models/sft (dvc pull sft)")
    params = load_params(ROOT / "params.yaml")
    out = tmp_path / "sepo" / "kuhn-seed1"

    def finished_run(params, plan, model_path, checkpoints, out_dir, policy_factory=None):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "README.md").write_text("# Model Card for Model ID\n")  # what PEFT's save_pretrained leaves
        return run.RunResult(summary=_summary(params, "kuhn"), history=[], outcome=None)

    monkeypatch.setattr(run, "train_and_select", finished_run)
    code = sepo_train.main(["--params", str(ROOT / "params.yaml"), "--game", "kuhn", "--seed", "1",
                            "--model", str(sft), "--checkpoints", str(tmp_path / "ckpt"), "--out", str(out),
                            "--metrics", str(tmp_path / "kuhn-seed1.json"), "--plots", str(tmp_path / "plots")])
    assert code == 0
    loaded = ModelCard.load(out / "README.md")
    assert loaded.data.model_name == "sepo-kuhn-seed1" and "kuhn" in loaded.data.tags
    assert "Model Card for Model ID" not in loaded.text and "| `sepo.seed` | 1 |" in loaded.text
    assert "`metrics/eval/sepo-seed1/kuhn.json`" in loaded.text
    assert (params.model.base == "tiny") == (loaded.data.base_model is None)
    assert json.loads((tmp_path / "kuhn-seed1.json").read_text())["seed"] == 1
