"""The evaluation fan-out: one Prefect task per (policy, domain) shard, on a Dask cluster.

A shard is a small picklable description, ``EvaluationShard(policy, game,
episodes, seed)``, and evaluating it is exactly ``sepo.evaluation.evaluate_policy``
for that policy and domain: every episode's seed derives from (seed, domain,
pool, opponent, index), and a policy is built inside its shard, so where a
shard runs changes nothing and the merged result equals a single-process run.
Policies are named as on the ``sepo`` command line (``scripted:NAME``,
``model:PATH``) and built by ``sepo.cli.resolve_policy``.

The cluster: the ``address`` argument, else the ``SEPO_DASK_ADDRESS``
environment variable, else ``orchestration.dask_address`` in ``params.yaml``;
when none is set, a local cluster of ``orchestration.dask_workers`` processes
is started for the run and closed after it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from sepo.config import OrchestrationParams, Params

DASK_ADDRESS_ENV = "SEPO_DASK_ADDRESS"


@dataclass(frozen=True)
class EvaluationShard:
    """One unit of work: a policy on one domain, ``episodes`` per opponent from base ``seed``."""

    policy: str
    game: str
    episodes: int
    seed: int


def evaluate_shard_here(params: Params, shard: EvaluationShard) -> dict[str, Any]:
    """The shard's metrics (SPEC section 4, with CIs, opponents as (pool, strategy) slots) and the domain's
    strategy audit (Kuhn: NashConv of the played policy), computed in this process."""
    from sepo.cli import resolve_policy
    from sepo.evaluation import evaluate_policy, with_audit_fields

    policy = resolve_policy(params, shard.game, shard.policy)
    result, played = evaluate_policy(params, shard.game, policy, episodes=shard.episodes, seed=shard.seed)
    return with_audit_fields(params, shard.game, policy, result, played)[0]


@task(task_run_name="evaluate-{shard.game}-{shard.policy}", cache_policy=NO_CACHE)
def evaluate_shard(params: Params, shard: EvaluationShard) -> dict[str, Any]:
    """``evaluate_shard_here`` on whichever worker Dask picks."""
    return evaluate_shard_here(params, shard)


def merge_results(shards: Sequence[EvaluationShard],
                  results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """policy -> domain -> result, in the order of the shards."""
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for shard, result in zip(shards, results, strict=True):
        merged.setdefault(shard.policy, {})[shard.game] = result
    return merged


def dask_task_runner(settings: OrchestrationParams, address: str | None = None) -> DaskTaskRunner:
    """A runner on the configured Dask scheduler, or on a fresh local cluster when none is configured."""
    address = address or os.environ.get(DASK_ADDRESS_ENV) or settings.dask_address
    if address:
        return DaskTaskRunner(address=address)
    # one thread per worker: torch already uses the cores, and processes keep policies apart
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@flow(name="evaluation-fanout")
def evaluation_fanout(params: Params, shards: list[EvaluationShard]) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate every shard in parallel on the flow's task runner and merge the results.

    Call it through ``evaluation_fanout.with_options(task_runner=dask_task_runner(...))``;
    the default runner (threads in this process) gives the same numbers.
    """
    futures = evaluate_shard.map(unmapped(params), shards)
    return merge_results(shards, futures.result())
