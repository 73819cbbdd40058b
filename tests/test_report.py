"""The report stage: tables for every domain, the Kuhn and ablation tables, figures, dvc plots data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from sepo.evaluation import policy_evaluation
from sepo.io import write_json_atomic
from sepo.report import COLUMNS, ReportInputs, with_interval
from sepo.rollout import ScriptedAgent
from stages import report as report_stage
from tests.model_fixtures import GAMES, PARAMS, ROOT

#: scripted stand-ins for the model rows, so the report can be built without training anything
STAND_INS = {"ipd": ("Random", "Grim", "GenerousTFT"), "auction": ("Random", "ValueBid", "Truthful"),
             "negotiation": ("Random", "Balanced", "Concede"),
             "negotiation_items": ("Conservative", "Proportional", "Adaptive"),
             "kuhn": ("RandomLegal", "TightPassive", "LooseAggressive")}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval")
    params = PARAMS.model_copy(update={"eval": PARAMS.eval.model_copy(update={
        "episodes": 2, "game_episodes": {"kuhn": 3}, "row_episodes": {"base": 1}})})
    for game in GAMES:
        rows = dict(zip(("base", "sft", "sepo"), STAND_INS[game], strict=True)) | params.eval.references[game]
        for name, strategy in rows.items():
            result, _ = policy_evaluation(params, game, ScriptedAgent(params.strategy(game, strategy)), name=name,
                                          source=f"scripted:{strategy}")
            write_json_atomic(folder / name / f"{game}.json", result)
    return folder


def run_report(eval_dir: Path, out: Path) -> int:
    return report_stage.main(["--eval", str(eval_dir), "--sepo-metrics", str(ROOT / "metrics/sepo"),
                              "--sepo-plots", str(ROOT / "plots/sepo"),
                              "--ablation", str(ROOT / "metrics/ablation.json"),
                              "--comparisons", str(ROOT / "metrics/comparisons.json"),
                              "--out", str(out / "reports"), "--plots", str(out / "plots")])


def test_report_has_every_domain_table_with_its_rows_and_intervals(eval_dir, tmp_path):
    assert run_report(eval_dir, tmp_path) == 0
    markdown = (tmp_path / "reports/results.md").read_text()
    assert "profile: tiny" in markdown and "not the paper's results" in markdown
    assert "Each row: 2 episodes per opponent (kuhn: 3; base: 1) of every pool" in markdown
    for game in GAMES:
        for name in ("base", "sft", "sepo", "equilibrium", "reciprocal"):
            result = json.loads((eval_dir / name / f"{game}.json").read_text())
            cells = " | ".join(with_interval(result["metrics"][key]) for key, _ in COLUMNS)
            assert cells in markdown, (game, name)
    assert "| policy | NashConv | exploitability | J bluff-bet | Q call | K bet |" in markdown
    assert "## Ablation on ipd: each arm − none-batch (paired)" in markdown  # the committed ablation
    assert "## Paired comparisons: sepo − sft" in markdown and "## Paper claims" in markdown
    figures = ("comparison.svg", "kuhn_frequencies.svg", "training_curves.svg", "paired_differences.svg",
               "ablation_kuhn_audit.svg")
    for figure in figures:
        assert f"figures/{figure}" in markdown
        assert (tmp_path / "reports/figures" / figure).read_text().count("<path") > 10
    html = (tmp_path / "reports/results.html").read_text()
    assert html.count("<svg") == len(figures) and "<script" not in html
    # domains, the Kuhn audit, the paired comparison, the seeds, the ablation, its two paired tables and its
    # Kuhn audit table, the ablation seeds, the claims
    assert html.count("<table>") == len(GAMES) + 9
    assert "## SEPO seeds: sepo − sft per seed and pooled" in markdown
    # the committed ablation replicates (metrics/ablation-seed<k>.json beside metrics/ablation.json)
    assert "## Ablation seeds: each replicated arm − none-batch per sepo.seed (paired)" in markdown
    assert "| ipd / per_rollout-batch − none-batch / seed 1 |" in markdown
    assert "| The per-rollout penalty beats payoff-only across seeds |" in markdown


def test_plots_csv_hold_one_line_per_row_and_the_nash_frequencies(eval_dir, tmp_path):
    run_report(eval_dir, tmp_path)
    with open(tmp_path / "plots/comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 * len(GAMES)
    kuhn_sepo = json.loads((eval_dir / "sepo/kuhn.json").read_text())
    line = next(r for r in rows if r["row"] == "kuhn/sepo")
    assert float(line["safety"]) == pytest.approx(kuhn_sepo["metrics"]["safety"]["value"], rel=1e-5)
    with open(tmp_path / "plots/kuhn_frequencies.csv") as f:
        frequencies = {r["row"]: float(r["probability"]) for r in csv.DictReader(f)}
    assert frequencies["reference/k_bet"] == 1.0 and frequencies["reference/j_bluff"] == pytest.approx(1 / 3)


def test_report_is_deterministic(eval_dir, tmp_path):
    run_report(eval_dir, tmp_path / "a")
    run_report(eval_dir, tmp_path / "b")
    for name in ("reports/results.md", "reports/results.html", "reports/figures/comparison.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_missing_row_is_one_line_and_nothing_is_written(eval_dir, tmp_path, capsys):
    partial = tmp_path / "eval"
    shutil.copytree(eval_dir, partial)
    (partial / "sepo/auction.json").unlink()
    assert run_report(partial, tmp_path) == 2
    error = capsys.readouterr().err
    assert "auction/sepo" in error and error.count("\n") == 1
    assert not (tmp_path / "reports").exists() and not (tmp_path / "plots").exists()


def test_inputs_from_two_profiles_are_refused(eval_dir, tmp_path):
    mixed = tmp_path / "eval"
    shutil.copytree(eval_dir, mixed)
    result = json.loads((mixed / "base/ipd.json").read_text())
    write_json_atomic(mixed / "base/ipd.json", {**result, "profile": "paper-qwen"})
    with pytest.raises(ValueError, match="mix profiles"):
        ReportInputs.load(mixed)


def test_the_tiny_warning_counts_each_domains_sepo_seeds():
    from sepo.report import ReportInputs

    def inputs(rows_by_game):
        return ReportInputs(evaluations={g: {r: {} for r in rows} for g, rows in rows_by_game.items()})

    assert inputs({"ipd": ["sft", "sepo"], "kuhn": ["sepo"]}).seed_counts() == "1 SEPO seed per domain"
    three = ["sft", "sepo", "sepo-seed1", "sepo-seed2"]
    assert inputs({"ipd": three, "auction": ["sepo"], "negotiation": ["sepo"], "kuhn": three}).seed_counts() == \
        "SEPO seeds per domain: ipd 3, kuhn 3, the others 1"
