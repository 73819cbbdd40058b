"""SFT and SEPO-GRPO under ``accelerate launch`` with 2 CPU processes (gloo): the ranks end with the same weights.

Data-parallel training is correct only if every rank applies the same
all-reduced update; a rank that trained alone (a missing process group, a
model not wrapped for DDP) would drift from the other.  Each rank of
``tests/multiprocess_worker.py`` writes a hash of its trained weights.
``ACCELERATE_USE_CPU`` makes accelerate (and the Trainer) pick the CPU's
gloo backend for the processes ``--multi_gpu`` starts; on GPUs the same
launch without it uses NCCL (README, "Running on N GPUs").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sepo.distributed import cpu_launch_command, cpu_launch_environment, free_port
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 2


def launch(stage: str, out: Path) -> list[dict]:
    command = cpu_launch_command(ROOT / "tests" / "multiprocess_worker.py", [stage, str(tiny_model_dir()), str(out)],
                                 PROCESSES, free_port())
    env = {**cpu_launch_environment(threads=1), "TRL_EXPERIMENTAL_SILENCE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"{stage}-rank{rank}.json").read_text()) for rank in range(PROCESSES)]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "sepo"])
def test_two_cpu_processes_train_the_same_weights(stage, tmp_path):
    ranks = launch(stage, tmp_path)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["main_for_stages"] for r in ranks] == [True, False]  # only rank 0's stage script writes outputs
    assert {(r["world_size"], r["backend"]) for r in ranks} == {(PROCESSES, "gloo")}
    assert all(r["moved"] and r["steps"] > 0 for r in ranks)
    assert ranks[0]["after"] == ranks[1]["after"]


def sft_stage_inputs(tmp_path: Path, **sft) -> tuple[Path, Path, Path]:
    """(params file with ``sft`` overrides, data/sft, data/models/base); skips without the pipeline's data."""
    import yaml

    data, base = ROOT / "data" / "sft", ROOT / "data" / "models" / "base"
    if not (base / "config.json").is_file() or not (data / "multi" / "train.parquet").is_file():
        pytest.skip("needs the pipeline's data/sft and data/models/base (dvc pull)")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["sft"].update(sft)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return params, data, base


def sft_stage_command(params: Path, data: Path, base: Path, out: Path, validation: Path) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / "sft.py"), "--params", str(params), "--data", str(data),
            "--base", str(base), "--checkpoints", str(out / "checkpoints"), "--out", str(out / "model"),
            "--metrics", str(out / "sft.json"), "--plots", str(out / "plots"), "--validation", str(validation)]


@pytest.mark.slow
def test_the_sft_stage_runs_itself_as_its_cpu_processes(tmp_path):
    params, data, base = sft_stage_inputs(
        tmp_path, cpu_processes=PROCESSES, num_threads=1, max_steps=3, logging_steps=1, eval_steps=3,
        save_steps=3, examples_per_domain={"ipd": 4, "auction": 4, "negotiation": 4, "negotiation_items": 4,
                                           "kuhn": 4}, valid_examples_per_domain=1)
    out = tmp_path / "run"
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    done = subprocess.run(sft_stage_command(params, data, base, out, ROOT / "reports" / "sft_validation.json"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "sft.json").read_text())
    assert metrics["processes"] == PROCESSES  # the Trainer saw a world of two ranks
    assert metrics["steps"] == 3 and metrics["wall_time_s"] > 0
    assert (out / "model" / "config.json").is_file()
    assert not list(out.glob("*.partial*"))  # rank 0 moved the model into place, nothing half-written left


def test_a_bad_input_is_one_line_before_any_process_is_launched(tmp_path):
    params, data, base = sft_stage_inputs(tmp_path, cpu_processes=PROCESSES, num_threads=1)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None)
    done = subprocess.run(sft_stage_command(params, data, base, out, tmp_path / "missing.json"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no validation report" in lines[0], done.stderr
    assert not out.exists()
