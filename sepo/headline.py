"""The headline metrics: per domain and row, the few numbers a run is judged by, values only.

Each evaluation writes ``<row>/<game>.json`` with every metric, its
bootstrap interval, counts and (Kuhn) the strategy audit's tables and text.
Declared as DVC metrics, those files made ``dvc metrics show`` and ``dvc exp
show`` thousands of columns wide (issue 18).  :func:`headline` keeps, per
domain and row, pay, exploit, safety, NRA, the invalid-action rate and,
where the domain has an audit, its NashConv: the file DVC's views show by
default (``metrics/headline.json``, stage ``headline``).  Intervals stay in
the evaluation files and the report; a headline is for seeing what moved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from sepo.errors import ConfigError
from sepo.replicates import replicate_rows

#: the evaluation metrics a headline keeps (their ``value``), in this order
METRICS = ("pay", "exploit", "safety", "nra", "invalid_rate")
#: audit scalars a headline keeps where a row's evaluation has an audit (Kuhn)
AUDIT_SCALARS = ("nash_conv",)
#: decimals kept: far below any interval's width, and float noise (a NashConv of 5.6e-17) reads as 0
DECIMALS = 6


def _values(path: Path) -> dict[str, float]:
    try:
        evaluation = json.loads(path.read_text())
        metrics = evaluation["metrics"]
        values = {name: round(float(metrics[name]["value"]), DECIMALS) for name in METRICS}
        scalars = (evaluation.get("audit") or {}).get("scalars", {})
        values.update({name: round(float(scalars[name]["value"]), DECIMALS)
                       for name in AUDIT_SCALARS if name in scalars})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an evaluation result ({type(exc).__name__}: {exc})") from exc
    return values


def headline(eval_dir: str | Path, rows: Mapping[str, Sequence[str]],
             replicated: Sequence[str] = ("sepo",)) -> dict[str, dict[str, dict[str, float]]]:
    """``{game: {row: {metric: value}}}`` from ``<eval_dir>/<row>/<game>.json``.

    ``rows`` maps each domain to the rows it must have (a missing or
    malformed file is a ``ConfigError`` naming it).  Each row in
    ``replicated`` is followed by its replicate rows ``<row>-seed<k>`` where
    they were evaluated on that domain, as in the report's tables.
    """
    eval_dir = Path(eval_dir)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for game, required in rows.items():
        names: list[str] = []
        for row in required:
            names.append(row)
            if row in replicated:
                names.extend(replicate_rows(eval_dir, row, game))
        for row in names:
            path = eval_dir / row / f"{game}.json"
            if not path.is_file():
                raise ConfigError(f"{path}: no evaluation result; run the evaluate stages first")
            table.setdefault(game, {})[row] = _values(path)
    return table
