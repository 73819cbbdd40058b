"""Scheduled evaluation: pull the released data, re-evaluate the checkpoints, publish the report.

What is evaluated is ``orchestration.evaluation`` in ``params.yaml``: a list
of policies (``scripted:NAME`` or ``model:PATH``, a path relative to the
project) and the domains each plays, with ``eval.episodes`` per opponent
from ``eval.seed``.  Steps:

1. ``dvc pull``.  When the remote is missing or lacks some files, the pull
   task fails (Prefect shows it red, with the reason in one line) and the
   flow goes on with what the workspace holds, saying so in its report.
2. A model whose folder is still missing after the pull is skipped and
   listed in the report; when nothing at all is left to evaluate the flow
   fails, so a scheduled run never looks green while measuring nothing.
3. The fan-out (``pipelines.evaluation_fanout``): one task per policy ×
   domain on a Dask cluster (a local one of ``orchestration.dask_workers``
   processes unless a scheduler address is configured).
4. A markdown report artifact ``scheduled-evaluation`` (and, with ``--out``,
   the full results as JSON).

Run once: ``python -m pipelines.scheduled_evaluation``; on a schedule:
``python -m pipelines.serve`` (see its help).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipelines.dvc_commands import run_streamed
from pipelines.evaluation_fanout import EvaluationShard, dask_task_runner, evaluation_fanout
from sepo.config import Params, load_params
from sepo.errors import ConfigError
from sepo.io import write_json_atomic
from sepo.models.loading import looks_like_hub_id

REPORT_METRICS = ("pay", "exploit", "collusion", "externality", "safety", "nra", "robust", "invalid_rate")


@task(cache_policy=NO_CACHE)
def pull_released_data(repo_dir: str) -> str:
    """``dvc pull``; a failed pull fails this task with a one-line reason (the flow itself goes on)."""
    logger = get_run_logger()
    outcome = run_streamed(Path(repo_dir), "pull", on_line=logger.info)
    if outcome.returncode == 0:
        return "dvc pull: the workspace has every tracked file"
    reason = outcome.error_line
    if any("no default remote" in line for line in outcome.tail):
        reason = f"no DVC remote is configured; {reason}"
    raise PullFailed(f"dvc pull could not fetch everything ({reason})")


class PullFailed(RuntimeError):
    """``dvc pull`` did not bring every tracked file."""


def locate_policy(policy: str, repo: Path) -> tuple[str, str | None]:
    """The policy with its model folder made absolute (so any worker finds it), and why it is unavailable.

    A ``model:`` target that is neither a folder of the project nor shaped
    like a Hub id (``owner/name``) is unavailable: not produced or not pulled.
    """
    kind, _, target = policy.partition(":")
    if kind != "model":
        return policy, None
    folder = repo / target
    if folder.exists():
        return f"model:{folder.resolve()}", None
    if looks_like_hub_id(target):
        return policy, None
    return policy, f"model folder not found: {folder} (not produced here, or not pulled)"


def plan_shards(params: Params, repo: Path, episodes: int | None = None) -> tuple[list[EvaluationShard],
                                                                                  dict[str, str]]:
    """The shards to evaluate and the policies skipped, with why."""
    episodes = params.eval.episodes if episodes is None else episodes
    shards, skipped = [], {}
    for target in params.orchestration.evaluation:
        policy, reason = locate_policy(target.policy, repo)
        if reason:
            skipped[target.policy] = reason
            continue
        shards.extend(EvaluationShard(policy, game, episodes, params.eval.seed) for game in target.games)
    return shards, skipped


def _cell(metric: dict[str, Any]) -> str:
    low, high = metric.get("ci_low"), metric.get("ci_high")
    if low is None or high is None:
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} [{low:.3f}, {high:.3f}]"


def report_markdown(results: dict[str, dict[str, dict[str, Any]]], skipped: dict[str, str],
                    pull_note: str) -> str:
    """The report: one table per domain, a row per policy, 95% CIs in brackets."""
    lines = ["# Scheduled evaluation", "", f"- {pull_note}"]
    lines += [f"- skipped `{policy}`: {reason}" for policy, reason in skipped.items()]
    games = dict.fromkeys(game for by_game in results.values() for game in by_game)
    for game in games:
        lines += ["", f"## {game}", "", "| policy | " + " | ".join(REPORT_METRICS) + " |",
                  "|---" * (len(REPORT_METRICS) + 1) + "|"]
        for policy, by_game in results.items():
            if game in by_game:
                metrics = by_game[game]["metrics"]
                cells = " | ".join(_cell(metrics[m]) for m in REPORT_METRICS)
                lines.append(f"| `{policy}` | {cells} |")
    return "\n".join(lines) + "\n"


@flow(name="scheduled-evaluation")
def scheduled_evaluation(repo_dir: str = ".", params_path: str = "params.yaml", pull: bool = True,
                         dask_address: str | None = None, episodes: int | None = None,
                         out: str | None = None) -> dict[str, Any]:
    """Pull, re-evaluate every configured policy × domain on Dask, publish the report."""
    repo = Path(repo_dir).resolve()
    params = load_params(repo / params_path)
    pull_note = "dvc pull skipped (--no-pull)"
    if pull:
        state = pull_released_data(str(repo), return_state=True)
        pull_note = (state.result() if state.is_completed()
                     else f"{state.result(raise_on_failure=False)}; evaluating what the workspace holds")
    shards, skipped = plan_shards(params, repo, episodes)
    if not shards:
        raise ConfigError("nothing to evaluate: " + "; ".join(f"{p}: {r}" for p, r in skipped.items()))
    runner = dask_task_runner(params.orchestration, dask_address)
    results = evaluation_fanout.with_options(task_runner=runner)(params, shards)
    report = {"pull": pull_note, "skipped": skipped, "results": results}
    create_markdown_artifact(report_markdown(results, skipped, pull_note), key="scheduled-evaluation",
                             description=f"re-evaluation of the checkpoints of {repo}")
    if out:
        write_json_atomic(repo / out, report)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.scheduled_evaluation", description=__doc__.split("\n\n")[0],
        epilog="What is evaluated: orchestration.evaluation in params.yaml. The Dask cluster: "
               "--dask-address, else SEPO_DASK_ADDRESS, else orchestration.dask_address, "
               "else a local cluster. "
               "To run it on a schedule, serve it: python -m pipelines.serve --help.")
    parser.add_argument("--repo", default=".", help="the DVC project (default: the current folder)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    parser.add_argument("--no-pull", dest="pull", action="store_false", help="skip `dvc pull`")
    parser.add_argument("--dask-address", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--episodes", type=int, help="episodes per opponent (default: eval.episodes)")
    parser.add_argument("--out", help="also write the results as JSON here (relative to --repo)")
    args = parser.parse_args(argv)
    report = scheduled_evaluation(args.repo, args.params, args.pull, args.dask_address, args.episodes,
                                  args.out)
    print(report_markdown(report["results"], report["skipped"], report["pull"]))


if __name__ == "__main__":
    main()
