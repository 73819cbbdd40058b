"""Prefect flows around the DVC pipeline: scheduling, retries, visibility and scale-out.

DVC stays the single source of truth for what is cached and what is stale;
the flows only call DVC commands or the ``sepo`` library, never re-implement
a stage.

- ``python -m pipelines.sepo_pipeline``: every DVC stage as one task, in order.
- ``python -m pipelines.experiment_sweep``: a parameter grid as queued DVC experiments.
- ``python -m pipelines.scheduled_evaluation``: pull, re-evaluate the checkpoints, report.
- ``python -m pipelines.serve``: deployments (the evaluation on a cron schedule) on a Prefect server.
"""
