"""``scripts/sepo_variant.py``: overrides are checked like params, and its pairing agrees with the compare stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sepo.errors import ConfigError
from tests.repo_files import load_repo_file

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "metrics" / "eval"


def load_script():
    return load_repo_file("scripts/sepo_variant.py")


def test_overrides_are_applied_and_validated():
    variant = load_script()
    raw = variant.overridden(ROOT / "params.yaml", ["sepo.group_weighting=pool", "grpo.learning_rate=1e-3"])
    assert raw["sepo"]["group_weighting"] == "pool" and raw["grpo"]["learning_rate"] == 1e-3
    with pytest.raises(ConfigError, match="group_weighting"):
        variant.overridden(ROOT / "params.yaml", ["sepo.group_weighting=slot"])
    with pytest.raises(ConfigError, match="evaluated as the committed rows"):
        variant.overridden(ROOT / "params.yaml", ["eval.episodes=4"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        variant.overridden(ROOT / "params.yaml", ["sepo.group_weighting"])


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    variant = load_script()
    assert variant.main(["-S", "nosuch.key=1", "--run", "kuhn:0", "--work", str(tmp_path)]) == 2
    assert variant.main(["--run", "chess:0", "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("sepo_variant: ") for line in err)


@pytest.mark.skipif(not (COMMITTED / "sepo" / "kuhn.episodes.jsonl.gz").is_file(), reason="no committed rows")
def test_a_variant_that_is_the_committed_run_differs_by_zero_and_pairs_as_the_compare_stage(tmp_path):
    variant = load_script()
    evaluated = {}
    for seed, committed_row in ((0, "sepo"), (1, "sepo-seed1")):
        folder = tmp_path / variant.row_name(seed)
        folder.mkdir()
        for name in ("kuhn.json", "kuhn.episodes.jsonl.gz"):
            shutil.copy(COMMITTED / committed_row / name, folder / name)
        evaluated[seed] = folder / "kuhn.json"
    result = variant.compare(ROOT / "params.yaml", {"kuhn": evaluated}, COMMITTED)
    for seed in (0, 1):
        same = result[f"kuhn seed {seed}: variant - committed sepo"]
        assert all(d["value"] == 0 and d["ci_low"] == 0 and d["ci_high"] == 0 for d in same.values())
    stage = json.loads((ROOT / "metrics" / "comparisons.json").read_text())
    assert result["kuhn seed 0: variant - sft"]["safety"] == pytest.approx(stage["differences"]["kuhn"]["safety"])
    assert result["kuhn seed 1: variant - sft"]["safety"] == pytest.approx(
        stage["replicates"]["kuhn"]["sepo-seed1"]["safety"])
    assert set(result) >= {"kuhn pooled over 2 seeds: variant - sft"}
