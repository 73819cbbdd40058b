"""Great Expectations validation: clean data passes; each deliberate breakage is caught by its own check."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sepo.config import parse_params
from sepo.data.files import output_files
from sepo.data.schema import SCHEMA
from sepo.data.sft import generate_datasets
from sepo.data.validation import failure_lines, validate_dataset, validate_datasets

ROOT = Path(__file__).resolve().parents[1]
RAW = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
for _name, (_train, _valid) in {"multi": (300, 75), "kuhn": (120, 30), "neg_items": (80, 20)}.items():
    RAW["data"]["datasets"][_name].update(train_examples=_train, valid_examples=_valid)
PARAMS = parse_params(RAW)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sft")
    for name, content in output_files(generate_datasets(PARAMS), PARAMS).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def broken_copy(clean, tmp_path, dataset, split, mutate):
    """A copy of the clean folder whose ``dataset/split`` rows went through ``mutate(rows)``."""
    folder = tmp_path / "broken"
    shutil.copytree(clean, folder)
    path = folder / dataset / f"{split}.parquet"
    rows = pq.read_table(path).to_pylist()
    mutate(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, compression="zstd")
    return folder


def failed(report):
    return report["failed"]


def test_clean_data_meets_every_expectation(clean):
    report = validate_datasets(PARAMS, clean)
    assert report["success"], failure_lines(report)
    kuhn = report["datasets"]["kuhn"]
    assert kuhn["examples"] == {"train": 120, "valid": 30}
    assert kuhn["checks"]["share:train:kuhn:NashApprox"]["observed_value"] == pytest.approx(0.45, abs=0.01)
    assert kuhn["approx_tokens"]["max"] <= PARAMS.validation.max_tokens


def _illegal_action(rows):
    # an auction bid in an IPD decision, with a consistent last line: only legality is wrong
    row = next(r for r in rows if r["game"] == "ipd")
    row["action"] = "HIGH"
    reply = row["completion"][0]
    reply["content"] = reply["content"].rsplit("\n", 1)[0] + "\nAction: HIGH"


def _mismatched_last_line(rows):
    row = next(r for r in rows if r["game"] == "ipd")
    other = next(a for a in row["legal_actions"] if a != row["action"])
    reply = row["completion"][0]
    reply["content"] = reply["content"].rsplit("\n", 1)[0] + f"\nAction: {other}"


def _null_prompt(rows):
    rows[3]["prompt"] = None


def _round_out_of_range(rows):
    next(r for r in rows if r["game"] == "negotiation")["round"] = 5  # negotiation has 4 rounds


def _illegal_but_listed(rows):
    # facing a bet, BET is not legal; listing it among the row's legal actions fools a column check
    row = next(r for r in rows if r["game"] == "kuhn" and "CALL" in r["legal_actions"])
    row["legal_actions"] = [*row["legal_actions"], "BET"]
    row["action"] = "BET"
    reply = row["completion"][0]
    reply["content"] = reply["content"].rsplit("\n", 1)[0] + "\nAction: BET"


REPLAY = "episode_replays_in_engine"


@pytest.mark.parametrize(("mutate", "dataset", "checks"), [
    (_illegal_action, "multi", ["action_in_legal_actions", REPLAY]),
    (_mismatched_last_line, "multi", ["last_line_is_action", REPLAY]),  # the next decision's chat differs
    (_null_prompt, "multi", ["prompt_not_null", REPLAY]),
    (_round_out_of_range, "multi", ["round_in_range:negotiation"]),
    (_illegal_but_listed, "kuhn", [REPLAY]),  # only the engine knows BET is not legal there
])
def test_each_breakage_is_caught_by_its_own_expectation(clean, tmp_path, mutate, dataset, checks):
    folder = broken_copy(clean, tmp_path, dataset, "train", mutate)
    report = validate_dataset(PARAMS, folder, dataset)
    assert sorted(failed(report)) == sorted(checks)
    check = checks[0]
    if check == REPLAY:  # the broken row, and every later decision of its episode (the engine's state differs)
        assert report["checks"][check]["unexpected_count"] >= 1
    else:
        assert report["checks"][check]["unexpected_count"] == 1
        assert len(report["checks"][check]["unexpected_ids"]) == 1


def test_a_leaked_episode_is_caught(clean, tmp_path):
    train_episode = pq.read_table(clean / "kuhn/train.parquet").column("episode_id")[0].as_py()

    def leak(rows):
        victim = rows[0]["episode_id"]
        for row in rows:
            if row["episode_id"] == victim:
                row["episode_id"] = train_episode

    folder = broken_copy(clean, tmp_path, "kuhn", "valid", leak)
    report = validate_dataset(PARAMS, folder, "kuhn")
    # two episodes under one id no longer replay as one
    assert sorted(failed(report)) == [REPLAY, "splits_share_no_episode"]
    assert all(i.startswith(("kuhn/train/", "kuhn/valid/")) for i in
               report["checks"]["splits_share_no_episode"]["unexpected_ids"])


def test_a_skewed_mixture_is_caught(clean, tmp_path):
    def relabel(rows):
        for row in rows:
            if row["game"] == "kuhn" and row["demonstrator"] == "TightValue":
                row["demonstrator"] = "NashApprox"

    folder = broken_copy(clean, tmp_path, "kuhn", "train", relabel)
    report = validate_dataset(PARAMS, folder, "kuhn")
    assert set(failed(report)) == {"share:train:kuhn:NashApprox", "share:train:kuhn:TightValue"}


def test_the_stage_exits_nonzero_and_the_report_names_the_failure(clean, tmp_path):
    folder = broken_copy(clean, tmp_path, "multi", "train", _illegal_action)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(RAW, sort_keys=False))
    report_path, metrics_path = tmp_path / "report.json", tmp_path / "metrics.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages/validate.py"), "--params", str(params_file), "--data", str(folder),
         "--report", str(report_path), "--metrics", str(metrics_path)],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "multi: action_in_legal_actions failed" in result.stderr
    report = json.loads(report_path.read_text())
    assert report["success"] is False
    assert report["datasets"]["multi"]["failed"] == ["action_in_legal_actions", REPLAY]
    assert report["datasets"]["kuhn"]["success"] is True
    assert json.loads(metrics_path.read_text())["datasets"]["multi"]["failed"] == 2
