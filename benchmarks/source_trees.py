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
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
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


def alternate_trees(trees: Sequence[Path], repeats: int, run_tree: Callable[[Path], dict],
                    measure: Callable[[dict], float], describe: Callable[[dict], str]) -> str:
    """Run both trees once per repeat, alternating, printing each run; the summary line of ``measure``.

    ``run_tree(tree)`` is one worker's result, ``measure`` its number,
    ``describe`` its line; the summary has both trees' medians and the
    after / before ratio, overall and per repeat.
    """
    values: dict[int, list[float]] = {0: [], 1: []}
    for repeat in range(repeats):
        for index, tree in enumerate(trees):
            result = run_tree(tree.resolve())
            values[index].append(measure(result))
            print(f"repeat {repeat + 1} {tree}: {describe(result)}", flush=True)
    before, after = (statistics.median(values[i]) for i in (0, 1))
    ratios = [a / b for a, b in zip(values[1], values[0], strict=True)]
    return (f"median: before {before:.3f}, after {after:.3f}; after / before {after / before:.3f} "
            f"(per repeat {', '.join(f'{r:.3f}' for r in ratios)})")
