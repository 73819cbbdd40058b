"""Training curves in DVCLive's layout: one writer for SFT, SEPO and every ablation arm.

A step log is a DVCLive folder: ``<dir>/plots/metrics/<name>.tsv`` (columns
``step`` and ``<name>``, one file per metric) and ``<dir>/metrics.json`` (each
metric's last value), which ``dvc plots``, DVC Studio and the VS Code extension
read as they read any DVCLive run.

Why the history is written through ``dvclive.Live`` at the end of a run rather
than by the Trainer's ``report_to="dvclive"`` callback: the callback numbers its
steps by log call, so a training log and an evaluation log of the same optimizer
step land on different steps, and a resumed run starts a fresh log that lacks
the steps before the checkpoint. ``trainer.state.log_history`` is saved in every
checkpoint, so written from it the log holds each optimizer step exactly once,
resumed or not, and is the same bytes on a rerun (no timestamps). The folder
is built beside its destination and swapped in (``sepo.io.replace_folder``), so
a failed write keeps the previous log.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sepo.io import partial_folder, replace_folder

METRICS_FOLDER = Path("plots") / "metrics"  # DVCLive's Live.plots_dir / Metric.subfolder


def metric_file(directory: str | Path, name: str) -> Path:
    """Where DVCLive keeps metric ``name`` of the step log in ``directory`` (``train/x`` nests a folder)."""
    return Path(directory) / METRICS_FOLDER / f"{name}.tsv"


def write_step_log(directory: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Log every row's finite numbers at the row's ``step`` with ``dvclive.Live``, replacing ``directory``.

    A NaN (a step that had nothing to measure) or a non-number is not logged, so
    a metric's file lists only the steps that measured it.
    """
    from dvclive import Live

    directory = Path(directory)
    building = partial_folder(directory)
    shutil.rmtree(building, ignore_errors=True)
    # no dvc.yaml edits and no experiment commits: the pipeline's dvc.yaml declares these plots
    with Live(dir=str(building), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        for row in rows:
            live.step = int(row["step"])
            for name, value in row.items():
                if name != "step" and _is_number(value) and math.isfinite(value):
                    live.log_metric(name, value)
    replace_folder(building, directory)


def trainer_rows(log_history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A Trainer's ``state.log_history`` as step-log rows, named as ``report_to="dvclive"`` names them.

    ``eval_loss`` becomes ``eval/loss`` and ``loss`` stays ``loss``
    (``dvclive.utils.standardize_metric_name``). Timings (``*runtime``,
    ``*_per_second``) and the epoch are left out, so a rerun logs the same
    bytes; so is the end-of-training summary entry, which is not a step.
    """
    from dvclive.utils import standardize_metric_name

    rows = []
    for entry in log_history:
        if "train_runtime" in entry:
            continue
        row: dict[str, Any] = {"step": int(entry["step"])}
        for key, value in entry.items():
            if key not in ("step", "epoch") and not key.endswith(("runtime", "_per_second")):
                row[standardize_metric_name(key, "dvclive.huggingface")] = value
        rows.append(row)
    return rows


def read_step_log(directory: str | Path) -> list[dict[str, float]]:
    """The rows ``write_step_log`` wrote, by step: each row has ``step`` and the metrics that step logged."""
    root = Path(directory) / METRICS_FOLDER
    by_step: dict[int, dict[str, float]] = {}
    for path in sorted(root.rglob("*.tsv")):
        name = path.relative_to(root).with_suffix("").as_posix()
        with path.open(newline="") as f:
            for record in csv.DictReader(f, delimiter="\t"):
                step = int(record["step"])
                by_step.setdefault(step, {"step": float(step)})[name] = float(record[path.stem])
    return [by_step[s] for s in sorted(by_step)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
