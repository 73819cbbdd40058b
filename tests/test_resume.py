"""Resume does what params say: whose checkpoints these are, which fit the budget, which model they start from.

And an exported SEPO adapter loads from any working directory, onto the
model it was trained on and no other.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from sepo.checkpoints import claim, complete_checkpoints, model_fingerprint, within_budget
from sepo.errors import ConfigError
from sepo.models.loading import load_model_and_tokenizer
from sepo.training.selection import export_policy
from tests.test_training_chat_tokens import tiny_model_dir


def _checkpoint(folder: Path, step: int) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(f"weights of step {step}".encode())
    (path / "trainer_state.json").write_text("{}")
    return path


def test_a_changed_identity_moves_the_old_checkpoints_aside(tmp_path, capsys):
    assert claim(tmp_path, {"grpo": {"learning_rate": 1e-3}, "game": "ipd"}) is False
    for step in (2, 4):
        _checkpoint(tmp_path, step)
    assert claim(tmp_path, {"grpo": {"learning_rate": 1e-3}, "game": "ipd"}) is True  # same run: resume

    assert claim(tmp_path, {"grpo": {"learning_rate": 5e-4}, "game": "ipd"}) is False
    message = capsys.readouterr().out
    assert "changed: grpo" in message and "moved 2 to" in message
    assert complete_checkpoints(tmp_path) == []
    (stale,) = tmp_path.glob("stale-*")
    assert stale.name in message
    assert (stale / "checkpoint-4/adapter_model.safetensors").read_bytes() == b"weights of step 4"
    assert json.loads((stale / "run.json").read_text())["grpo"]["learning_rate"] == 1e-3
    assert json.loads((tmp_path / "run.json").read_text())["grpo"]["learning_rate"] == 5e-4


def test_setting_the_same_old_run_aside_twice_keeps_both(tmp_path):
    first, second = {"mode": "none"}, {"mode": "constant"}
    for _ in range(2):
        claim(tmp_path, first)
        _checkpoint(tmp_path, 2)
        claim(tmp_path, second)
    assert len(list(tmp_path.glob("stale-*"))) == 2


def test_a_lower_budget_uses_only_the_checkpoints_within_it(tmp_path):
    for step in (2, 4, 6):
        _checkpoint(tmp_path, step)
    assert [s for s, _ in within_budget(complete_checkpoints(tmp_path), 4)] == [2, 4]
    assert within_budget(complete_checkpoints(tmp_path), 1) == []


def test_the_fingerprint_sees_different_weights_of_the_same_size(tmp_path):
    model = tiny_model_dir()
    a, b, moved = tmp_path / "a", tmp_path / "b", tmp_path / "elsewhere/a"
    shutil.copytree(model, a)
    shutil.copytree(model, b)
    shutil.copytree(model, moved)
    weights = bytearray((b / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF  # one byte of the last tensor: same size, same names
    (b / "model.safetensors").write_bytes(bytes(weights))
    assert (a / "model.safetensors").stat().st_size == (b / "model.safetensors").stat().st_size
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) == model_fingerprint(moved)  # where a model lies is not what it is
    (a / "checkpoints").mkdir()  # a subfolder (training state, say) is not part of the model
    (a / "checkpoints/optimizer.pt").write_bytes(b"state")
    assert model_fingerprint(a) == model_fingerprint(moved)
    (a / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a reworded model card")
    assert model_fingerprint(a) == model_fingerprint(moved)  # the card describes the model; it is not the model


@pytest.fixture
def exported_adapter(tmp_path) -> tuple[Path, Path]:
    """A LoRA adapter on a copy of the tiny model, exported as the sepo stage does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = tmp_path / "project/data/models/sft"
    shutil.copytree(tiny_model_dir(), base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.fill_(0.01)  # a trained adapter changes the logits
    checkpoint = tmp_path / "project/data/checkpoints/sepo/ipd/checkpoint-2"
    model.save_pretrained(checkpoint)
    out = tmp_path / "project/data/models/sepo/ipd"
    export_policy(checkpoint, out, base=base)
    shutil.copy2(base / "tokenizer.json", out / "tokenizer.json")
    shutil.copy2(base / "tokenizer_config.json", out / "tokenizer_config.json")
    return base, out


def test_an_adapter_loads_from_another_working_directory(exported_adapter, tmp_path, monkeypatch):
    base, out = exported_adapter
    reference, _ = load_model_and_tokenizer(base)
    elsewhere = tmp_path / "somewhere/else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    model, _ = load_model_and_tokenizer(os.path.relpath(out, elsewhere))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, reference(ids).logits)  # the adapter is applied


def test_an_adapter_never_binds_to_a_different_model(exported_adapter):
    base, out = exported_adapter
    weights = bytearray((base / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (base / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ConfigError, match="was trained on a different model"):
        load_model_and_tokenizer(out)


def test_an_adapter_without_its_base_says_where_it_looked(exported_adapter):
    base, out = exported_adapter
    shutil.rmtree(base)
    with pytest.raises(ConfigError, match=r"trained on the model at \.\./\.\./sft relative to it"):
        load_model_and_tokenizer(out)


@pytest.mark.slow
def test_a_lower_max_steps_trains_and_selects_within_it(tmp_path):
    """4 steps trained, then max_steps 2: nothing retrained, only checkpoint 2 scored and exported."""
    import subprocess
    import sys

    import yaml

    from tests.test_training_resume import ROOT, _params_file

    params = _params_file(tmp_path)
    raw = yaml.safe_load(params.read_text())

    def run(steps: int) -> subprocess.CompletedProcess:
        raw["sepo"]["max_steps"] = steps
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        command = [sys.executable, "stages/sepo_train.py", "--params", str(params), "--game", "ipd",
                   "--model", str(tiny_model_dir()), "--checkpoints", str(tmp_path / "ck"),
                   "--out", str(tmp_path / "model"), "--metrics", str(tmp_path / "metrics.json"),
                   "--plots", str(tmp_path / "plots")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    first = run(4)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run(2)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "checkpoints at steps 4 lie past max_steps 2" in second.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["selection"]["best_step"] == 2
    assert list(metrics["selection"]["training_pool_safety"]) == ["2"]
    assert (tmp_path / "ck/checkpoint-4").is_dir()  # kept for a later, longer budget


def test_the_exported_adapter_config_lists_its_target_modules_sorted(tmp_path):
    # PEFT keeps target_modules as a set and writes them in hash order; the export sorts them so
    # an identical retrain gives the same released folder; the other keys and files are as exported
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    config = {"peft_type": "LORA", "r": 8, "target_modules": ["v_proj", "q_proj", "o_proj", "k_proj"]}
    (checkpoint / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    (checkpoint / "optimizer.pt").write_bytes(b"state")
    out = tmp_path / "out"
    export_policy(checkpoint, out)
    exported = json.loads((out / "adapter_config.json").read_text())
    assert exported["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert {k: v for k, v in exported.items() if k != "target_modules"} == {"peft_type": "LORA", "r": 8}
    assert not (out / "optimizer.pt").exists()
