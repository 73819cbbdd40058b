"""Replicate rows: ``<row>-seed<k>``, a run of ``<row>`` with another ``sepo.seed`` (stage ``sepo_replicate``).

One naming rule, read by the comparison, the headline and the report, so the
three never disagree on which rows are a row's replicates or in which order
(by seed, numerically).
"""

from __future__ import annotations

from pathlib import Path

SUFFIX = "-seed"


def replicate_seed(name: str, row: str = "sepo") -> int | None:
    """k when ``name`` is ``<row>-seed<k>``, else None."""
    prefix = row + SUFFIX
    tail = name.removeprefix(prefix)
    return int(tail) if name.startswith(prefix) and tail.isdigit() else None


def replicate_rows(eval_dir: str | Path, row: str, game: str) -> list[str]:
    """The replicate rows of ``row`` evaluated on ``game`` (``<eval_dir>/<row>-seed<k>/<game>.json``), by seed."""
    found = [p.parent.name for p in Path(eval_dir).glob(f"{row}{SUFFIX}*/{game}.json")]
    return sorted((name for name in found if replicate_seed(name, row) is not None),
                  key=lambda name: replicate_seed(name, row))
