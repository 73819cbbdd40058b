"""Replicates: ``<name>-seed<k>``, a run of ``<name>`` with another ``sepo.seed``.

A replicate SEPO row is ``sepo-seed<k>`` (stage ``sepo_replicate``); a
replicate ablation table is ``ablation-seed<k>.json`` beside
``ablation.json`` (stage ``ablation_replicate``).  One naming rule, read by
the comparison, the headline and the report, so they never disagree on
which rows or files are replicates or in which order (by seed, numerically).
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


def replicate_files(path: str | Path) -> dict[int, Path]:
    """The replicates of the file ``path`` (``<dir>/<stem>-seed<k><suffix>``), by seed."""
    path = Path(path)
    found = {replicate_seed(p.stem, path.stem): p for p in path.parent.glob(f"{path.stem}{SUFFIX}*{path.suffix}")}
    return {seed: found[seed] for seed in sorted(s for s in found if s is not None)}
