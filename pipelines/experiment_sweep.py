"""A parameter grid as DVC experiments: queue every combination, run the queue, compare.

Each combination of the grid becomes ``dvc exp run --queue -n NAME -S key=value ...``;
``dvc exp run --run-all --jobs N`` then runs the queue (each experiment in its
own temporary workspace, so the user's workspace is untouched and DVC's run
cache skips stages an experiment does not change).  ``dvc exp show --json``
is collected into one table artifact, ``experiment-sweep``: a row per
experiment with the swept params and every metric, plus the baseline.

Before anything is queued, every combination is applied to ``params.yaml``
and validated with the project's schema, so a misspelt key or a bad value
stops the sweep with one line instead of failing N experiments later.

Run: ``python -m pipelines.experiment_sweep --set penalty.mode=per_rollout,constant --set eval.seed=0,1``.
Apply a result afterwards with ``dvc exp apply NAME``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipelines.dvc_commands import DvcCommandError, flatten, run_json, run_streamed
from sepo.config import parse_params
from sepo.errors import ConfigError


def expand_grid(grid: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def check_overrides(raw_params: Mapping[str, Any], overrides: Mapping[str, str], source: str) -> None:
    """Validate params.yaml with ``overrides`` applied (values read as YAML, as DVC reads them)."""
    raw = copy.deepcopy(dict(raw_params))
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{source}: {key}: no such section {part!r} in params.yaml")
            node = node[part]
        node[last] = yaml.safe_load(value)
    parse_params(raw, source)


@task(task_run_name="queue-{name}", cache_policy=NO_CACHE)
def queue_experiment(repo_dir: str, name: str, overrides: dict[str, str]) -> None:
    """``dvc exp run --queue`` one combination under a fixed name."""
    logger = get_run_logger()
    set_params = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
    outcome = run_streamed(Path(repo_dir), "exp", "run", "--queue", "-n", name, *set_params,
                           on_line=logger.info)
    if outcome.returncode != 0:
        raise DvcCommandError(f"could not queue experiment {name}: {outcome.error_line}")


@task(cache_policy=NO_CACHE)
def run_queue(repo_dir: str, jobs: int) -> int:
    """``dvc exp run --run-all``, which returns when the queue is empty; its exit status."""
    logger = get_run_logger()
    outcome = run_streamed(Path(repo_dir), "exp", "run", "--run-all", "--jobs", str(jobs),
                           on_line=logger.info)
    if outcome.returncode != 0:
        logger.warning("dvc exp run --run-all exited %d: %s", outcome.returncode, outcome.error_line)
    return outcome.returncode


def comparison_rows(shown: list[dict[str, Any]], names: Sequence[str],
                    swept: Sequence[str]) -> list[dict[str, Any]]:
    """One row per requested experiment (``failed`` when DVC has no result for it) and the baseline."""
    def row(label: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        data = entry.get("data") or {}
        params = dict(flatten({k: v.get("data", {}) for k, v in (data.get("params") or {}).items()}))
        metrics = {f"{file}:{key}": value for file, content in (data.get("metrics") or {}).items()
                   for key, value in flatten(content.get("data", {}))}
        status = "failed" if entry.get("error") else "done"
        return {"experiment": label, "rev": str(entry.get("rev", ""))[:7], "status": status,
                **{key: params.get(f"params.yaml.{key}") for key in swept}, **metrics}

    found: dict[str, Mapping[str, Any]] = {}
    rows = []
    for baseline in shown:
        if baseline.get("rev") != "workspace":
            rows.append(row(f"baseline ({baseline.get('name') or 'HEAD'})", baseline))
        for group in baseline.get("experiments") or []:
            for revision in group.get("revs", []):
                found[revision.get("name")] = revision
    for name in names:
        rows.append(row(name, found[name]) if name in found
                    else {"experiment": name, "rev": "", "status": "failed", **dict.fromkeys(swept)})
    return rows


@flow(name="experiment-sweep")
def experiment_sweep(grid: dict[str, list[str]], repo_dir: str = ".", params_path: str = "params.yaml",
                     jobs: int = 1, name_prefix: str | None = None) -> list[dict[str, Any]]:
    """Queue and run one DVC experiment per combination of ``grid``; publish the comparison table.

    ``grid`` maps a params key (``penalty.mode``) to the values to try, as
    ``dvc exp run -S`` takes them.  Experiments are named ``PREFIX-1``,
    ``PREFIX-2``, ...; the prefix defaults to ``sweep-`` and the start time.
    """
    if not grid or not all(grid.values()):
        raise ConfigError("the grid needs at least one key with at least one value")
    repo = Path(repo_dir).resolve()
    raw_params = yaml.safe_load((repo / params_path).read_text())
    combinations = expand_grid(grid)
    for combination in combinations:
        check_overrides(raw_params, combination, f"{params_path} with {combination}")
    prefix = name_prefix or time.strftime("sweep-%Y%m%d-%H%M%S")
    names = [f"{prefix}-{i}" for i in range(1, len(combinations) + 1)]
    for name, combination in zip(names, combinations, strict=True):
        queue_experiment(str(repo), name, combination)
    run_queue(str(repo), jobs)
    rows = comparison_rows(run_json(repo, "exp", "show"), names, list(grid))
    create_table_artifact(rows, key="experiment-sweep", description=f"DVC experiments over {grid} in {repo}")
    failed = [r["experiment"] for r in rows if r["status"] == "failed"]
    if failed:
        raise RuntimeError(f"experiments failed: {', '.join(failed)} (see `dvc queue logs NAME`)")
    return rows


def _grid_entry(text: str) -> tuple[str, list[str]]:
    key, separator, values = text.partition("=")
    if not separator or not key or not values:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,VALUE...], got {text!r}")
    return key, values.split(",")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.experiment_sweep", description=__doc__.split("\n\n")[0],
        epilog="Example: --set penalty.mode=per_rollout,constant --set eval.seed=0,1 queues 4 experiments. "
               "Compare later with `dvc exp show`; apply one with `dvc exp apply NAME`.")
    parser.add_argument("--set", dest="grid", action="append", type=_grid_entry, required=True,
                        metavar="KEY=V1,V2", help="a params key and the values to try (repeat for more keys)")
    parser.add_argument("--repo", default=".",
                        help="the DVC project, a git repository (default: the current folder)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at a time (default: 1)")
    parser.add_argument("--name-prefix",
                        help="experiment names are PREFIX-1, PREFIX-2, ... (default: sweep-TIME)")
    args = parser.parse_args(argv)
    rows = experiment_sweep(dict(args.grid), args.repo, args.params, args.jobs, args.name_prefix)
    for row in rows:
        print("  ".join(f"{key}={value}" for key, value in row.items()))


if __name__ == "__main__":
    main()
