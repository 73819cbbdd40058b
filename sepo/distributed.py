"""Which process of a multi-process launch this is, and how a stage starts one on the CPU.

Stage scripts clear and write their outputs; under ``accelerate launch``
every process runs the script, so only the main one may touch shared files
(a second rank clearing an output folder while the first writes into it
loses work).  ``accelerate launch`` and ``torchrun`` set ``RANK`` for each
process; a plain ``python`` run has none and is the main process.

On a CPU machine a stage can run data-parallel too: ``run_on_cpu_processes``
starts the stage's own script again under ``accelerate launch`` with gloo
(the tiny model's SFT step is overhead-bound: two one-thread processes train
twice the examples of a step in about 1.3 times its time, where a second
thread in one process buys 10%; ``benchmarks/sft_step.py --processes 2``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def is_main_process() -> bool:
    """True for a single-process run and for rank 0 of a distributed launch."""
    return int(os.environ.get("RANK", "0")) == 0


def launched() -> bool:
    """Whether this process is one rank of ``accelerate launch`` / ``torchrun`` (they set ``RANK``)."""
    return "RANK" in os.environ


def cpu_launch_command(script: str | Path, argv: Sequence[str], processes: int, port: int) -> list[str]:
    """``accelerate launch`` of ``script argv`` as ``processes`` CPU processes on this machine.

    The flags are those ``tests/test_multiprocess.py`` runs: ``--multi_gpu``
    with ``ACCELERATE_USE_CPU`` in the environment (``cpu_launch_environment``)
    gives one gloo process group over the CPU processes, and the Trainer
    wraps the model in DDP.
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port), str(script), *argv]


def cpu_launch_environment(threads: int) -> dict[str, str]:
    """This environment for the ranks of a CPU launch, each with ``threads`` OpenMP threads."""
    return {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": str(max(threads, 1))}


def free_port() -> int:
    """A TCP port on localhost nobody listens on now (the launch's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_on_cpu_processes(script: str | Path, argv: Sequence[str], processes: int, threads: int) -> int:
    """Run ``script argv`` again as ``processes`` data-parallel CPU ranks; their launch's exit status.

    Why a stage relaunches itself rather than DVC calling ``accelerate launch``:
    the stage's command in ``dvc.yaml`` stays the same for every profile, and
    the number of processes is a param like any other (``sft.cpu_processes``).
    The ranks' output reaches this process's stdout and stderr as it comes.
    """
    command = cpu_launch_command(script, argv, processes, free_port())
    return subprocess.run(command, env=cpu_launch_environment(threads), check=False).returncode
