"""Serve the flows as deployments of a Prefect server; the evaluation runs on a schedule.

Schedules need a real Prefect server (the temporary one a lone flow run
starts has no scheduler).  Start one bound to this machine only, point the
client at it, then serve:

    prefect server start --host 127.0.0.1 --port 4200
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m pipelines.serve

Deployments (``FLOW/DEPLOYMENT``):

- ``scheduled-evaluation/scheduled``: on ``orchestration.evaluation_cron``
  (``--cron`` or ``--interval`` override it);
- ``sepo-pipeline/on-demand`` and ``experiment-sweep/on-demand``: no
  schedule; start them with ``prefect deployment run 'sepo-pipeline/on-demand'``
  (a sweep needs ``--param grid='{"penalty.mode": ["per_rollout", "constant"]}'``).

Runs execute in subprocesses of this process, one at a time by default:
they share one DVC workspace, and DVC locks it while it works.  Stop with
Ctrl-C; on the way out the schedules it served are paused.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from pipelines.experiment_sweep import experiment_sweep
from pipelines.scheduled_evaluation import scheduled_evaluation
from pipelines.sepo_pipeline import sepo_pipeline
from sepo.config import load_params


def deployments(repo_dir: str = ".", params_path: str = "params.yaml", cron: str | None = None,
                interval_seconds: float | None = None) -> list[RunnerDeployment]:
    """The deployments ``serve`` registers; schedule: ``interval_seconds``, else ``cron``, else params."""
    repo = Path(repo_dir).resolve()
    on_project = {"repo_dir": str(repo), "params_path": params_path}
    if interval_seconds is not None:
        schedule: dict[str, object] = {"interval": interval_seconds}
    else:
        schedule = {"cron": cron or load_params(repo / params_path).orchestration.evaluation_cron}
    return [
        scheduled_evaluation.to_deployment(name="scheduled", parameters=on_project, **schedule,
                                           description="pull, re-evaluate the checkpoints, report"),
        sepo_pipeline.to_deployment(name="on-demand", parameters=on_project,
                                    description="every DVC stage in order; up-to-date stages cost nothing"),
        experiment_sweep.to_deployment(name="on-demand", parameters=on_project,
                                       description="a params grid as queued DVC experiments"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.serve", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".",
                        help="the DVC project the runs work on (default: the current folder)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to --repo")
    schedule = parser.add_mutually_exclusive_group()
    schedule.add_argument("--cron",
                          help="cron schedule of the evaluation (default: orchestration.evaluation_cron)")
    schedule.add_argument("--interval", type=float, metavar="SECONDS",
                          help="run the evaluation every SECONDS instead of on a cron (to try it out)")
    parser.add_argument("--limit", type=int, default=1, help="flow runs at a time (default: 1, since runs "
                        "share the DVC workspace)")
    args = parser.parse_args(argv)
    serve(*deployments(args.repo, args.params, args.cron, args.interval), limit=args.limit)


if __name__ == "__main__":
    main()
