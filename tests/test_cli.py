"""The `sepo` command line: deterministic output, one-line errors with exit code 2."""

import json
from pathlib import Path

import pytest

from sepo.cli import main

ROOT = Path(__file__).resolve().parents[1]
PARAMS = str(ROOT / "params.yaml")


def test_evaluate_is_deterministic_for_a_seed(tmp_path):
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        assert main(["--params", PARAMS, "evaluate", "--policy", "scripted:TitForTat", "--game", "ipd",
                     "--episodes", "4", "--seed", "7", "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    data = json.loads(outs[0].read_text())
    metrics = data["games"]["ipd"]["metrics"]
    for key in ("pay", "exploit", "collusion", "externality", "safety", "nra", "robust", "invalid_rate"):
        assert metrics[key]["ci_low"] <= metrics[key]["value"] <= metrics[key]["ci_high"]
    # TitForTat never defects first, so against AlwaysCooperate it never defects
    assert metrics["collusion"]["value"] == 0.0


def test_kuhn_evaluation_reports_the_exact_exploitability(tmp_path):
    out = tmp_path / "nash.json"
    assert main(["--params", PARAMS, "evaluate", "--policy", "scripted:NashApprox", "--game", "kuhn",
                 "--episodes", "2", "--out", str(out)]) == 0
    audit = json.loads(out.read_text())["games"]["kuhn"]["audit"]
    assert len(audit["policy_table"]) == 12
    assert audit["scalars"]["nash_conv"]["value"] < 1e-9


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "--policy", "scripted:TitForTat", "--game", "chess"], "unknown game 'chess'; valid: all, auction"),
    (["evaluate", "--policy", "scripted:Nope", "--game", "ipd"],
     "unknown ipd strategy 'Nope'; valid: AlternatingDefect"),
    (["evaluate", "--policy", "oracle:x", "--game", "ipd"], "bad policy 'oracle:x'"),
    (["play", "--game", "ipd", "--agent", "scripted:TitForTat", "--opponent", "Nobody"],
     "unknown ipd strategy 'Nobody'"),
])
def test_wrong_names_are_one_line_and_exit_2(argv, expected, capsys, tmp_path):
    out = tmp_path / "never.json"
    code = main(["--params", PARAMS, *argv, *(["--out", str(out)] if argv[0] == "evaluate" else [])])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and expected in err
    assert not out.exists()


def test_play_prints_the_transcript(capsys):
    assert main(["--params", PARAMS, "play", "--game", "ipd", "--agent", "scripted:Grim",
                 "--opponent", "AlwaysDefect", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- user ---") == 8 and "prisoner's dilemma" in out
