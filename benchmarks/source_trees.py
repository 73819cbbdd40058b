"""What the two-tree benchmarks share: a worker run in a fresh process that imports ``sepo`` from one tree.

``rollout_versions.py`` and ``sepo_step.py`` compare two source trees (before
and after a change) by running the same worker once per tree per repeat,
alternating trees; each worker runs with that tree as its working directory
(so its ``params.yaml``) and first on ``PYTHONPATH`` (so its ``sepo``), and
prints one JSON line as its last output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def run_worker(script: str | Path, tree: Path, worker_args: Sequence[str], **environment: str) -> dict:
    """``script --worker worker_args`` in a fresh process importing ``sepo`` from ``tree``; its JSON line."""
    env = dict(os.environ, PYTHONPATH=str(tree), **environment)
    command = [sys.executable, str(Path(script).resolve()), "--worker", *worker_args]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{tree}: the worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def two_trees_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the two trees, ``--repeats`` and the hidden ``--worker`` switch."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("trees", nargs="*", type=Path, help="two source trees: before, after")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser
