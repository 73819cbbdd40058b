"""The headline metrics file: values only, per domain and row, read from the evaluation outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sepo.errors import ConfigError
from sepo.headline import headline

ROOT = Path(__file__).resolve().parents[1]


def _ci(value: float) -> dict[str, float]:
    return {"value": value, "ci_low": value - 0.5, "ci_high": value + 0.5}


def _evaluation(base: float, audit: bool = False) -> dict:
    metrics = {"pay": _ci(base), "exploit": _ci(base + 0.1), "safety": _ci(base - 1), "nra": _ci(0.2),
               "invalid_rate": _ci(0.0), "collusion": _ci(0.3), "decision_count": 10}
    out = {"metrics": metrics, "policy": "x", "game": "g"}
    if audit:
        out["audit"] = {"description": "a long text", "scalars": {"nash_conv": _ci(0.13), "exploitability": _ci(0.06)},
                        "frequencies": {"j_bluff": _ci(0.2)}}
    return out


def _write(folder: Path, row: str, game: str, evaluation: dict) -> None:
    (folder / row).mkdir(parents=True, exist_ok=True)
    (folder / row / f"{game}.json").write_text(json.dumps(evaluation))


@pytest.fixture()
def evaluations(tmp_path: Path) -> Path:
    folder = tmp_path / "eval"
    for i, row in enumerate(("base", "sft", "sepo", "equilibrium")):
        _write(folder, row, "ipd", _evaluation(float(i)))
        _write(folder, row, "kuhn", _evaluation(float(i), audit=True))
    _write(folder, "sepo-seed2", "kuhn", _evaluation(7.0, audit=True))
    _write(folder, "sepo-seed10", "kuhn", _evaluation(8.0, audit=True))
    _write(folder, "sepo-seedling", "kuhn", _evaluation(9.0))  # not a replicate row
    return folder


def test_headline_keeps_six_values_per_row_and_orders_replicates_after_their_row(evaluations):
    rows = {"ipd": ["base", "sft", "sepo", "equilibrium"], "kuhn": ["base", "sft", "sepo", "equilibrium"]}
    table = headline(evaluations, rows)
    assert list(table) == ["ipd", "kuhn"]
    assert list(table["ipd"]) == ["base", "sft", "sepo", "equilibrium"]
    assert list(table["kuhn"]) == ["base", "sft", "sepo", "sepo-seed2", "sepo-seed10", "equilibrium"]
    assert table["ipd"]["sepo"] == {"pay": 2.0, "exploit": 2.1, "safety": 1.0, "nra": 0.2, "invalid_rate": 0.0}
    assert table["kuhn"]["sepo-seed10"] == {"pay": 8.0, "exploit": 8.1, "safety": 7.0, "nra": 0.2,
                                            "invalid_rate": 0.0, "nash_conv": 0.13}
    flat = json.dumps(table)
    assert "ci_low" not in flat and "description" not in flat and "collusion" not in flat


def test_headline_names_a_missing_evaluation(evaluations):
    with pytest.raises(ConfigError, match=r"reciprocal/ipd\.json: no evaluation result"):
        headline(evaluations, {"ipd": ["sft", "reciprocal"]})


def test_headline_names_a_malformed_evaluation(evaluations):
    (evaluations / "sft" / "ipd.json").write_text(json.dumps({"metrics": {"pay": _ci(1.0)}}))
    with pytest.raises(ConfigError, match=r"sft/ipd\.json: not an evaluation result \(KeyError"):
        headline(evaluations, {"ipd": ["sft"]})


def _stage(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / "headline.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_stage_reports_a_missing_evaluation_as_one_line_and_exit_2(tmp_path):
    out = tmp_path / "headline.json"
    done = _stage("--params", str(ROOT / "params.yaml"), "--eval", str(tmp_path / "none"), "--out", str(out),
                  cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("headline: error: ") and "base/ipd.json: no evaluation result" in done.stderr
    assert not out.exists()


def test_stage_writes_every_domain_and_reference_row(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    folder = tmp_path / "eval"
    for game, roles in params["eval"]["references"].items():
        for row in ("base", "sft", "sepo", *roles):
            _write(folder, row, game, _evaluation(1.0, audit=game == "kuhn"))
    _write(folder, "sepo-seed1", "ipd", _evaluation(2.0))
    out = tmp_path / "headline.json"
    done = _stage("--params", str(ROOT / "params.yaml"), "--eval", str(folder), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())
    assert set(table) == set(params["games"])
    assert set(table["ipd"]) == {"base", "sft", "sepo", "sepo-seed1", *params["eval"]["references"]["ipd"]}
    assert "nash_conv" in table["kuhn"]["sft"] and "nash_conv" not in table["ipd"]["sft"]


def test_dvc_shows_only_the_headline_and_the_small_files_as_metrics():
    """The per-row evaluation files are outs, so `dvc metrics show`/`diff` and `dvc exp show` stay small."""
    done = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    paths = set().union(*(rev.get("data", {}) for rev in shown.values()))
    assert "metrics/headline.json" in paths or not (ROOT / "metrics" / "headline.json").exists()
    assert not any(p.startswith(("metrics/eval/", "metrics/sepo/")) for p in paths), sorted(paths)
    assert not {"metrics/comparisons.json", "metrics/ablation.json"} & paths


def test_replicate_rows_follow_one_rule_in_seed_order(tmp_path):
    from sepo.replicates import replicate_rows, replicate_seed

    for name in ("sepo-seed10", "sepo-seed2", "sepo-seedx", "sepo-seed1", "sft-seed1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ipd.json").write_text("{}")
    assert replicate_rows(tmp_path, "sepo", "ipd") == ["sepo-seed1", "sepo-seed2", "sepo-seed10"]
    assert replicate_seed("sepo-seed10") == 10 and replicate_seed("sepo-seedx") is None
    assert replicate_seed("sft-seed1") is None and replicate_seed("sft-seed1", "sft") == 1
