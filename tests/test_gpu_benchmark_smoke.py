"""The GPU rollout benchmark runs end to end at a toy shape on the CPU, without the training stack."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_rollout.py"
#: not installed on the GPU machines (and pydantic maybe not): the script must run without them
ABSENT_ON_GPU_MACHINES = ("trl", "dvc", "prefect", "pyarrow", "pyspiel", "open_spiel", "pydantic", "datasets",
                          "sepo.config")


def test_the_tiny_benchmark_measures_every_phase_without_the_training_stack(tmp_path):
    out = tmp_path / "gpu_rollout.json"
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_ON_GPU_MACHINES)
    code = (f"import runpy, sys; {blocked}; sys.argv = ['gpu_rollout.py', '--tiny', '--out', {str(out)!r}]; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["device"].startswith("cpu") and result["shape"] == "tiny" and not result["skipped"]
    assert not result["failed"] and set(result["memory"]) == {"fast", "fast_check", "hf_generate", "grpo_step"}
    phases = result["phases"]
    assert phases["setup"]["copy_bandwidth_gb_s"] > 0 and phases["setup"]["roofline_step_s"] > 0
    assert phases["fast"]["tokens_per_reply"] == result["new_tokens"]
    assert phases["hf_generate"]["tokens_per_reply"] == result["new_tokens"]
    assert phases["fast"]["decode_steps_per_s"] > 0 and phases["fast"]["roofline_fraction"] > 0
    assert phases["hf_generate"]["fast_over_generate"] > 0
    assert phases["grpo_step"]["step_s"] > 0 and phases["grpo_step"]["trainable_parameters"] > 0
    assert "decisions_per_s" in done.stdout


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_rollout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_spent_budget_stops_the_run_and_still_writes_the_results(tmp_path):
    module = load_benchmark()
    out = tmp_path / "stopped.json"
    assert module.main(["--tiny", "--budget-seconds", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["stopped"].startswith("budget") and result["phases"] == {}


def test_an_arm_that_runs_out_of_memory_loses_only_its_own_results(tmp_path, monkeypatch):
    module = load_benchmark()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 128.00 MiB")

    monkeypatch.setattr(module, "run_fast", out_of_memory)  # as the H100's first attempt did
    out = tmp_path / "partial.json"
    assert module.main(["--tiny", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["failed"]["fast"].startswith("OutOfMemoryError: CUDA out of memory")
    assert {"setup", "fast_check", "hf_generate", "grpo_step"} <= set(result["phases"])
    assert result["phases"]["hf_generate"]["fast_over_generate"] is None
