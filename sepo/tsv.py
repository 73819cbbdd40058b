"""Step logs as TSV tables, the format the pipeline's ``dvc plots`` read.

One renderer for every stage's curves (SFT loss, SEPO steps, ablation arms),
so that they format numbers alike and mark a missing measurement alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def tsv_cell(value: Any) -> str:
    """Six significant digits for a float, empty for NaN (a step that had nothing to measure)."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def tsv_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header line of ``columns`` and one line per row, newline-terminated."""
    lines = ["\t".join(columns)] + ["\t".join(tsv_cell(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"
