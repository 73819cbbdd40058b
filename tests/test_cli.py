"""The `sepo` command line: deterministic output, one-line errors with exit code 2."""

import json
import re
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
    (["play", "--game", "ipd", "--policy", "scripted:TitForTat", "--opponent", "Nobody"],
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
    assert main(["--params", PARAMS, "play", "--game", "ipd", "--policy", "scripted:Grim",
                 "--opponent", "AlwaysDefect", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- user ---") == 8 and "prisoner's dilemma" in out


def test_version_prints_the_installed_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"sepo {version('sepo')}"


def test_list_names_every_game_pool_strategy_and_profile(capsys):
    assert main(["--params", PARAMS, "list"]) == 0
    out = capsys.readouterr().out
    for game in ("ipd", "auction", "negotiation", "negotiation_items", "kuhn"):
        assert f"\n{game} (" in f"\n{out}"
    assert "  exploit pool     AlwaysDefect, AlternatingDefect" in out  # ipd's exploit pool, from params.yaml
    assert "MaxExploiter" in out and "profiles: paper-gemma, paper-qwen" in out
    # a best response cannot be an evaluated policy: listed apart, never under --policy scripted:NAME
    policies = next(line for line in out.splitlines() if "scripted:NAME" in line and "TightValue" in line)
    assert "BestResponse" not in policies
    assert "  opponents only   BestResponse" in out


@pytest.mark.parametrize("before", [True, False])
def test_params_is_accepted_before_or_after_the_subcommand(before, tmp_path, capsys):
    """A params file with a wrong key fails the same way wherever --params stands, so it was read."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "params.yaml").read_text() + "\nno_such_section: 1\n")
    argv = ["list"]
    argv = ["--params", str(bad), *argv] if before else [*argv, "--params", str(bad)]
    assert main(argv) == 2
    assert "no_such_section" in capsys.readouterr().err


def test_params_after_the_subcommand_wins_over_the_default(tmp_path, capsys):
    assert main(["list", "--params", PARAMS]) == 0 and "kuhn (" in capsys.readouterr().out


def test_play_takes_policy_and_agent_is_a_deprecated_alias(capsys):
    argv = ["--params", PARAMS, "play", "--game", "kuhn", "--opponent", "AlwaysBet", "--seed", "3"]
    assert main([*argv, "--policy", "scripted:NashApprox"]) == 0
    with_policy = capsys.readouterr()
    assert main([*argv, "--agent", "scripted:NashApprox"]) == 0
    with_agent = capsys.readouterr()
    assert with_agent.out == with_policy.out and "--- result ---" in with_policy.out
    assert with_policy.err == "" and "--agent is deprecated; use --policy" in with_agent.err


def test_evaluate_prints_each_metric_with_its_ci_and_logs_progress_off_a_terminal(capsys):
    assert main(["--params", PARAMS, "evaluate", "--policy", "scripted:TitForTat", "--game", "ipd",
                 "--episodes", "2", "--seed", "7"]) == 0
    captured = capsys.readouterr()
    assert "ipd (2 episodes per opponent; value [95% bootstrap CI])" in captured.out
    for key in ("pay", "exploit", "collusion", "externality", "safety", "nra", "robust", "invalid_rate"):
        assert re.search(rf"^  {key} +-?\d+\.\d{{3}}  \[-?\d+\.\d{{3}}, -?\d+\.\d{{3}}\]$", captured.out, re.M), key
    # pytest's captured stderr is no terminal: a plain log line, here the closing one, instead of a bar
    assert re.search(r"^evaluate ipd: (\d+)/\1 decisions \(100%\).* - done$", captured.err, re.M)


def test_help_has_no_raw_markup(capsys):
    for argv in ([], ["evaluate"], ["play"], ["list"], ["plan"], ["profile"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert "usage: sepo" in out and "`" not in out, argv
