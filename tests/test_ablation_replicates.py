"""The ablation's replicate seeds: which arms they train, how their files are found, and the stage's --seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sepo.config import AblationRun, load_params, parse_params
from sepo.errors import ConfigError
from sepo.replicates import replicate_files
from tests.test_training_ablation import tiny_kuhn_ablation
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


def test_replicate_arms_name_arms_of_the_ablation_in_runs_order():
    names = [run.name for run in PARAMS.ablation.replicate_runs()]
    assert names == [n for n in (r.name for r in PARAMS.ablation.runs) if n in PARAMS.ablation.replicate_arms]
    assert AblationRun(mode="per_rollout", scale_rewards="batch", add_exploit=["BestResponse"],
                       best_response_mixture="average").name == "per_rollout-batch-best_response-average"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["ablation"]["replicate_arms"] = ["per_rollout-batch", "per_rollout-bach"]
    with pytest.raises(ConfigError, match=r"replicate_arms\.1: unknown arm 'per_rollout-bach'; valid: .*none-batch"):
        parse_params(raw)


def test_replicate_files_are_found_beside_their_file_by_numeric_seed(tmp_path):
    for name in ("ablation.json", "ablation-seed10.json", "ablation-seed2.json", "ablation-seedx.json",
                 "ablation-seed3.csv", "other-seed1.json"):
        (tmp_path / name).write_text("{}")
    assert replicate_files(tmp_path / "ablation.json") == {2: tmp_path / "ablation-seed2.json",
                                                            10: tmp_path / "ablation-seed10.json"}
    assert replicate_files(tmp_path / "missing" / "ablation.json") == {}


def test_a_replicate_without_arms_to_train_is_one_line_and_exit_2(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["ablation"]["replicate_arms"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "ablation.py"), "--params", "params.yaml",
                           "--seed", "1", "--model", str(ROOT / "data/models/sft"), "--metrics", "a.json",
                           "--plots", "plots"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ablation: error: ablation.replicate_arms is empty: a replicate (--seed) would train no arm"]
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "plots").exists()


@pytest.mark.slow
def test_a_replicate_trains_only_its_arms_at_its_seed_and_pairs_them(tmp_path):
    raw = tiny_kuhn_ablation(("per_rollout", "constant", "none"), max_steps=1, workers=1)
    assert raw["ablation"]["replicate_arms"] == ["per_rollout-batch", "none-batch"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    tables = {}
    for seed in (0, 1):
        done = subprocess.run([sys.executable, str(ROOT / "stages" / "ablation.py"), "--params", "params.yaml",
                               "--seed", str(seed), "--model", tiny_model_dir(), "--metrics", f"a{seed}.json",
                               "--plots", f"plots{seed}"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        tables[seed] = json.loads((tmp_path / f"a{seed}.json").read_text())
    kuhn = tables[1]["kuhn"]
    assert set(kuhn) == {"per_rollout-batch", "none-batch", "paired_differences", "audit_reference"}  # no SFT row
    assert list(kuhn["paired_differences"]) == ["per_rollout-batch − none-batch"]
    assert sorted(p.name for p in (tmp_path / "plots1" / "kuhn").iterdir()) == ["none-batch", "per_rollout-batch"]
    # the seed reaches training: the same arm from another sepo.seed ends with other weights
    assert kuhn["none-batch"]["adapter_sha256"] != tables[0]["kuhn"]["none-batch"]["adapter_sha256"]
