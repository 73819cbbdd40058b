"""The GPU rollout benchmark runs end to end at a toy shape on the CPU, without the training stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.repo_files import load_repo_file

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
    assert result["device"].startswith("cpu") and result["shape"] == "tiny qwen3-4b" and not result["skipped"]
    assert not result["failed"]
    assert set(result["memory"]) == {"fast", "fast_check", "policy_loop", "continuous_batching", "hf_generate",
                                     "grpo_step"}
    phases = result["phases"]
    assert phases["setup"]["copy_bandwidth_gb_s"] > 0 and phases["setup"]["roofline_step_s"] > 0
    assert phases["fast"]["tokens_per_reply"] == result["new_tokens"]
    assert phases["hf_generate"]["tokens_per_reply"] == result["new_tokens"]
    assert phases["fast"]["decode_steps_per_s"] > 0 and phases["fast"]["roofline_fraction"] > 0
    assert phases["hf_generate"]["fast_over_generate"] > 0
    for arm in ("policy_loop", "continuous_batching"):  # every reply has exactly --new-tokens tokens
        assert phases[arm]["tokens_per_reply"] == result["new_tokens"]
        assert phases["hf_generate"][f"{arm}_over_generate"] > 0
    assert phases["grpo_step"]["step_s"] > 0 and phases["grpo_step"]["trainable_parameters"] > 0
    assert "decisions_per_s" in done.stdout


def load_benchmark():
    return load_repo_file(str(SCRIPT.relative_to(ROOT)), "gpu_rollout")


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
    assert module.main(["--tiny", "--skip", "continuous_batching", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["failed"]["fast"].startswith("OutOfMemoryError: CUDA out of memory")
    assert {"setup", "fast_check", "policy_loop", "hf_generate", "grpo_step"} <= set(result["phases"])
    assert "fast_over_generate" not in result["phases"]["hf_generate"]
    assert result["skipped"] == {"continuous_batching": "--skip continuous_batching"}


@pytest.mark.parametrize("shape", ["qwen3.5-4b", "gemma4-e4b"])
def test_the_paper_architectures_take_the_standard_loop_and_are_timed_against_generate(tmp_path, shape):
    """Hybrid and shared-KV shapes: no fast path (skipped with its reason), the standard loop measured."""
    module = load_benchmark()
    out = tmp_path / f"{shape}.json"
    assert module.main(["--tiny", "--shape", shape, "--skip-grpo", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shape"] == f"tiny {shape}"
    assert result["skipped"]["fast"].startswith("sepo.policies.fast_decode.supports() is False")
    phases = result["phases"]
    assert phases["policy_loop"]["tokens_per_reply"] == result["new_tokens"]
    assert phases["hf_generate"]["policy_loop_over_generate"] > 0
    setup = phases["setup"]
    if shape == "qwen3.5-4b":  # one full-attention layer in four keeps keys/values; the rest keep a state
        assert setup["state_bytes_per_row"] > 0
        assert setup["kv_bytes_per_token"] == 2 * 2 * 16 * 4  # 1 layer x K and V x 2 heads x 16 x fp32
    else:  # of 6 layers the last 3 share: 2 sliding (head 16) and 1 full (head 32) keep their own
        assert setup["state_bytes_per_row"] == 0
        assert setup["kv_bytes_per_token"] == 2 * 2 * (16 + 16 + 32) * 4
    # continuous batching either ran every reply to full length or left its reason
    assert ("continuous_batching" in result["failed"]
            or phases["continuous_batching"]["tokens_per_reply"] == result["new_tokens"])
