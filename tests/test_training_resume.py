"""A SEPO run killed with SIGKILL after a checkpoint resumes from that checkpoint, not from step 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sepo.checkpoints import complete_checkpoints
from sepo.step_log import read_step_log
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6


def _params_file(folder: Path) -> Path:
    """The committed params with a tiny budget: 2-round IPD, 2 episodes a step, a checkpoint every 2 steps."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["ipd"]["rounds"] = 2
    raw["sepo"].update(max_steps=STEPS, save_steps=2, groups_per_step=1, selection_episodes=1, num_threads=1)
    raw["grpo"]["num_generations"] = 2
    raw["generation"]["max_new_tokens"] = 8
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    checkpoints, log = tmp_path / "checkpoints", tmp_path / "first.log"
    command = [sys.executable, "stages/sepo_train.py", "--params", str(_params_file(tmp_path)),
               "--game", "ipd", "--model", str(tiny_model_dir()), "--checkpoints", str(checkpoints),
               "--out", str(tmp_path / "model"), "--metrics", str(tmp_path / "metrics.json"),
               "--plots", str(tmp_path / "plots")]
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path}
    with log.open("w") as output:
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not complete_checkpoints(checkpoints) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    killed_at = complete_checkpoints(checkpoints)[-1][0]
    assert 0 < killed_at < STEPS

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming ipd from checkpoint-{killed_at} (step {killed_at} of {STEPS})" in rerun.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == killed_at and metrics["steps"] == STEPS
    # the log holds every step once: the first run's steps come back from the checkpoint
    logged = [int(row["step"]) for row in read_step_log(tmp_path / "plots") if "reward" in row]
    assert logged == list(range(1, STEPS + 1))
    assert (tmp_path / "model" / "adapter_model.safetensors").is_file()
    assert str(metrics["selection"]["best_step"]) in metrics["selection"]["training_pool_safety"]
