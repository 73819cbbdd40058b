"""The DVC pipeline as a Prefect flow: one task per stage, dependencies first.

Each task asks DVC whether its stage is up to date (``dvc status``) and, only
when it is not, runs ``dvc repro --single-item STAGE``.  So a stage DVC
considers up to date costs nothing and is recorded as ``up to date``; the
stage list and order come from ``dvc.yaml`` itself (foreach stages expand to
``sepo@ipd`` and so on), never from a list kept here.

With ``orchestration.stage_jobs`` (or ``--jobs``) above 1, stages that do not
depend on each other run side by side.  ``dvc repro`` holds the repository's
lock for its whole run, so two cannot share a workspace; instead each changed
stage's outputs are removed and its own command runs, as ``dvc repro`` would
do, and ``dvc commit --force STAGE`` then records its dependencies and outputs
in ``dvc.lock``.  DVC's own calls take turns; only the commands overlap.  The
one difference from ``dvc repro``: DVC's run cache is not consulted, so a stage
whose exact inputs ran before runs again rather than being restored.

A failed stage is retried with exponential backoff (``orchestration.stage_retries``
and ``orchestration.retry_backoff_seconds`` in ``params.yaml``), except when
its command exits with 2, the project's code for a wrong parameter or input,
which no retry can fix.  After the last attempt the flow fails naming the
stage; outputs of the stages before it stay as they were (DVC only touches a
stage's own outputs).  Stage timings and the final ``dvc metrics show`` table
are published as Prefect artifacts.

Run: ``python -m pipelines.sepo_pipeline [--repo DIR] [--retries N]``.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.futures import PrefectFuture, wait
from prefect.logging import get_run_logger
from prefect.runtime import task_run as current_task_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from pipelines.dvc_commands import (
    metrics_rows,
    pipeline_graph,
    pipeline_stages,
    prepare_stage_run,
    run_shell_streamed,
    run_streamed,
    stage_changes,
)
from sepo.config import load_params
from sepo.errors import ConfigError

DVC_TURNS = threading.Lock()  # one DVC call at a time in a flow: each takes the repository lock
INPUT_ERROR_EXIT_CODE = 2  # stages exit 2 on a wrong parameter or input (GUIDE.md): never transient
_EXIT_CODE = re.compile(r"exited with (-?\d+)")


class StageFailed(RuntimeError):
    """A DVC stage failed; the message names it and quotes DVC's error."""

    def __init__(self, stage: str, attempt: int, command_exit_code: int | None, error_line: str) -> None:
        super().__init__(f"DVC stage '{stage}' failed on attempt {attempt}: {error_line}")
        self.stage = stage
        self.attempt = attempt
        self.command_exit_code = command_exit_code


@dataclass(frozen=True)
class StageRun:
    """One stage of a flow run: ``ran``, ``up to date`` or ``failed``; wall time includes retries."""

    stage: str
    status: str
    seconds: float
    attempts: int


def _retry_unless_input_error(task: Task, task_run: TaskRun, state: State) -> bool:
    error = state.result(raise_on_failure=False)
    return not (isinstance(error, StageFailed) and error.command_exit_code == INPUT_ERROR_EXIT_CODE)


@task(task_run_name="dvc-repro-{stage}", cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_input_error)
def reproduce_stage(repo_dir: str, stage: str) -> tuple[str, int]:
    """Run one stage through DVC when, and only when, DVC says it changed: (status, attempt)."""
    logger = get_run_logger()
    repo = Path(repo_dir)
    attempt = current_task_run.run_count
    changes = stage_changes(repo, stage)
    if not changes:
        logger.info("stage %s is up to date: nothing to do", stage)
        return "up to date", attempt
    logger.info("stage %s changed (%s): dvc repro --single-item %s", stage, *changes.values(), stage)
    outcome = run_streamed(repo, "repro", "--single-item", stage, on_line=logger.info)
    if outcome.returncode != 0:
        exit_code = _EXIT_CODE.search(outcome.error_line)
        raise StageFailed(stage, attempt, int(exit_code.group(1)) if exit_code else None, outcome.error_line)
    return "ran", attempt


@task(task_run_name="dvc-stage-{stage}", cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_input_error)
def run_and_commit_stage(repo_dir: str, stage: str) -> tuple[str, int]:
    """Run one changed stage's commands beside other stages, then ``dvc commit`` it: (status, attempt)."""
    logger = get_run_logger()
    repo = Path(repo_dir)
    attempt = current_task_run.run_count
    with DVC_TURNS:
        changes = stage_changes(repo, stage)
        commands = prepare_stage_run(repo, stage) if changes else []
    if not changes:
        logger.info("stage %s is up to date: nothing to do", stage)
        return "up to date", attempt
    logger.info("stage %s changed (%s): running its command, then dvc commit --force %s",
                stage, *changes.values(), stage)
    for command in commands:
        outcome = run_shell_streamed(repo, command, on_line=lambda line: logger.info("%s: %s", stage, line))
        if outcome.returncode != 0:
            raise StageFailed(stage, attempt, outcome.returncode, outcome.error_line)
    with DVC_TURNS:
        committed = run_streamed(repo, "commit", "--force", stage, on_line=logger.info)
    if committed.returncode != 0:
        raise StageFailed(stage, attempt, None, committed.error_line)
    return "ran", attempt


@flow(name="sepo-pipeline")
def sepo_pipeline(repo_dir: str = ".", params_path: str = "params.yaml", retries: int | None = None,
                  retry_backoff_seconds: float | None = None, jobs: int | None = None) -> list[StageRun]:
    """Reproduce every DVC stage of ``repo_dir`` in dependency order; publish timings and metrics.

    ``retries``, ``retry_backoff_seconds`` and ``jobs`` override ``params.yaml``'s
    ``orchestration`` section; the delay doubles with each retry.
    """
    repo = Path(repo_dir).resolve()
    settings = load_params(repo / params_path).orchestration
    retries = settings.stage_retries if retries is None else retries
    backoff = settings.retry_backoff_seconds if retry_backoff_seconds is None else retry_backoff_seconds
    jobs = settings.stage_jobs if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"jobs: expected at least 1 stage at a time, got {jobs}")
    retried = {"retries": retries, "retry_delay_seconds": exponential_backoff(backoff)}
    runs: list[StageRun] = []
    try:
        if jobs > 1:
            _run_side_by_side(repo, jobs, run_and_commit_stage.with_options(**retried), runs)
        else:
            _run_in_turn(repo, reproduce_stage.with_options(**retried), runs)
    finally:
        create_table_artifact([asdict(r) | {"seconds": round(r.seconds, 2)} for r in runs],
                              key="sepo-pipeline-stages",
                              description=f"DVC stages of {repo}, in the order they ended")
    metrics = metrics_rows(repo)
    if metrics:
        create_table_artifact(metrics, key="sepo-pipeline-metrics",
                              description=f"`dvc metrics show` of {repo} after the run")
    return runs


def _run_in_turn(repo: Path, stage_task: Task, runs: list[StageRun]) -> None:
    """One ``dvc repro --single-item`` after another, in ``pipeline_stages`` order."""
    for stage in pipeline_stages(repo):
        started = time.perf_counter()
        try:
            status, attempts = stage_task(str(repo), stage)
        except StageFailed as failure:
            runs.append(StageRun(stage, "failed", time.perf_counter() - started, failure.attempt))
            raise
        runs.append(StageRun(stage, status, time.perf_counter() - started, attempts))


def _run_side_by_side(repo: Path, jobs: int, stage_task: Task, runs: list[StageRun]) -> None:
    """Start each stage once every stage it depends on has ended well, at most ``jobs`` at once.

    After a failure no new stage starts; the running ones finish (and are
    recorded), then the failure is raised, naming its stage.
    """
    waiting = pipeline_graph(repo)  # stage -> the stages it depends on, dependencies first
    ended: set[str] = set()
    running: dict[PrefectFuture, tuple[str, float]] = {}
    failure: StageFailed | None = None
    while running or (waiting and failure is None):
        ready = [stage for stage, upstream in waiting.items() if ended.issuperset(upstream)]
        for stage in ready[:jobs - len(running)] if failure is None else []:
            del waiting[stage]
            running[stage_task.submit(str(repo), stage)] = (stage, time.perf_counter())
        if not running:  # nothing can start: only a cycle, which DVC itself refuses, gets here
            raise RuntimeError(f"stages {sorted(waiting)} wait on each other")
        done, _ = wait(list(running), timeout=1.0)
        for future in done:
            stage, started = running.pop(future)
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                attempt = outcome.attempt if isinstance(outcome, StageFailed) else 1
                runs.append(StageRun(stage, "failed", time.perf_counter() - started, attempt))
                failure = failure or (outcome if isinstance(outcome, StageFailed)
                                      else StageFailed(stage, attempt, None, str(outcome)))
                continue
            status, attempts = outcome
            runs.append(StageRun(stage, status, time.perf_counter() - started, attempts))
            ended.add(stage)
    if failure is not None:
        raise failure


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sepo_pipeline", description=__doc__.split("\n\n")[0],
        epilog="Runs against the Prefect API in PREFECT_API_URL, or a temporary local server when unset. "
               "Each stage is a task; stages DVC reports up to date are skipped and shown as such.")
    parser.add_argument("--repo", default=".", help="the DVC project (default: the current folder)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    parser.add_argument("--retries", type=int,
                        help="retries of a failed stage (default: orchestration.stage_retries)")
    parser.add_argument("--retry-backoff", type=float, help="seconds before the first retry, doubling after "
                        "(default: orchestration.retry_backoff_seconds)")
    parser.add_argument("--jobs", type=int, help="stages run side by side (default: orchestration.stage_jobs; "
                        "above 1, each changed stage's command runs and is then `dvc commit`-ed)")
    args = parser.parse_args(argv)
    for run in sepo_pipeline(args.repo, args.params, args.retries, args.retry_backoff, args.jobs):
        print(f"{run.stage:30s} {run.status:10s} {run.seconds:8.1f} s")


if __name__ == "__main__":
    main()
