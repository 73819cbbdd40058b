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
    assert variant.main(["--run", "kuhn:0", "--work", str(tmp_path), "--rescore-selection", "8"]) == 2
    assert variant.main(["--run", "kuhn:0", "--work", str(tmp_path), "--every-checkpoint",
                         "--rescore-selection", "0"]) == 2
    assert variant.main(["--run", "kuhn:0", "--work", str(tmp_path), "--steps", "40"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("sepo_variant: ") for line in err)


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


def _tiny_params(folder: Path) -> Path:
    """The committed params with a tiny budget: 2-round IPD, a checkpoint every 2 of 4 steps, 1 episode per opponent."""
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["ipd"]["rounds"] = 2
    raw["sepo"].update(max_steps=4, save_steps=2, groups_per_step=1, selection_episodes=1, num_threads=1)
    raw["grpo"]["num_generations"] = 2
    raw["generation"]["max_new_tokens"] = 8
    raw["eval"].update(episodes=1, game_episodes={}, bootstrap_samples=50)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_every_checkpoint_is_evaluated_and_the_selected_one_is_the_variant_row(tmp_path):
    """The curve's selected checkpoint, exported and evaluated, is the row the stage's selected adapter gives."""
    import subprocess
    import sys

    from tests.test_training_chat_tokens import tiny_model_dir

    variant = load_script()
    params, model, committed = _tiny_params(tmp_path), tiny_model_dir(), tmp_path / "committed"
    sft = committed / "sft"
    done = subprocess.run([sys.executable, "stages/evaluate.py", "--params", str(params), "--game", "ipd",
                           "--policy", "sft", "--model", str(model), "--out", str(sft / "ipd.json"),
                           "--episodes", str(sft / "ipd.episodes.jsonl.gz")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "work"
    assert variant.main(["--params", str(params), "--run", "ipd:0", "--work", str(work), "--model", str(model),
                         "--committed", str(committed), "--jobs", "1", "--every-checkpoint",
                         "--rescore-selection", "1", "2"]) == 0
    curve = json.loads((work / "checkpoint_curve.json").read_text())["ipd"]["seeds"]["0"]
    metrics = json.loads((work / "metrics" / "ipd-seed0.json").read_text())["selection"]
    assert sorted(curve["checkpoints"], key=int) == ["2", "4"] and curve["selected_step"] == metrics["best_step"]
    for step, point in curve["checkpoints"].items():  # rescored at the run's own count: the stage's own scores
        assert point["selection_safety"] == metrics["training_pool_safety"][step]
        assert point["selection_safety at 1 episodes"] == point["selection_safety"]
        assert "selection_safety at 2 episodes" in point
    assert curve["selected_step at 1 episodes"] == metrics["best_step"]
    selected = curve["checkpoints"][str(curve["selected_step"])]["variant - sft"]
    assert selected == json.loads((work / "comparison.json").read_text())["ipd seed 0: variant - sft"]
    # --steps: only those checkpoints are paired with SFT; the rescore still covers every one (it picks among all)
    assert variant.main(["--params", str(params), "--run", "ipd:0", "--work", str(work), "--model", str(model),
                         "--committed", str(committed), "--jobs", "1", "--every-checkpoint", "--steps", "4",
                         "--rescore-selection", "1"]) == 0
    only = json.loads((work / "checkpoint_curve.json").read_text())["ipd"]["seeds"]["0"]
    assert "variant - sft" in only["checkpoints"]["4"] and "variant - sft" not in only["checkpoints"]["2"]
    assert only["selected_step at 1 episodes"] == metrics["best_step"]
