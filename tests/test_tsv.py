"""The TSV tables every stage writes for ``dvc plots``."""

from __future__ import annotations

import csv
import io

from sepo.tsv import tsv_table


def test_a_table_reads_back_with_its_header_and_blank_for_nan():
    rows = [{"step": 1, "loss": 0.123456789, "note": "a"}, {"step": 2, "loss": float("nan"), "note": "b"}]
    text = tsv_table(rows, ["step", "loss"])
    assert text.endswith("\n")
    assert list(csv.DictReader(io.StringIO(text), delimiter="\t")) == [
        {"step": "1", "loss": "0.123457"}, {"step": "2", "loss": ""}]
    assert tsv_table([], ["step"]) == "step\n"
