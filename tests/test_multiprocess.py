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
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(stage: str, out: Path) -> list[dict]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(PROCESSES), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               str(ROOT / "tests" / "multiprocess_worker.py"), stage, str(tiny_model_dir()), str(out)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1",
           "PYTHONPATH": str(ROOT)}
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
