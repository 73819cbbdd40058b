"""The report's ablation audit: each arm's NashConv and key frequencies against Nash, as a line, a table, a figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sepo import report
from sepo.config import load_params
from sepo.evaluation import evaluate_games, policy_evaluation, with_audit_fields
from sepo.rollout import ScriptedAgent
from sepo.training import ablation
from sepo.training.groups import TRAINING_POOLS

ROOT = Path(__file__).resolve().parents[1]
#: scripted stand-ins for the arms' final policies: known tables, so known NashConv
ARMS = {"sft": "TightValue", "none-batch": "PotControl", "per_rollout-batch": "LooseAggressive",
        "per_rollout-batch-best_response": "NashApprox"}


def ablation_file() -> dict:
    """The Kuhn entry of an ablation file as the stage writes it (sorted keys, as JSON holds them)."""
    params = load_params(ROOT / "params.yaml")
    arms = {}
    for name, strategy in ARMS.items():
        agent = ScriptedAgent(params.strategy("kuhn", strategy))
        result, played = evaluate_games(params, ["kuhn"], agent, episodes=2, pools=TRAINING_POOLS)["kuhn"]
        evaluation, records = with_audit_fields(params, "kuhn", agent, result, played)
        history = [] if name == "sft" else [{"step": 1, "reward": 0.0, "penalty_grad_norm": 0.0}]
        arms[name] = ablation.ArmResult(history=history, evaluation=evaluation, episodes=records)
    return json.loads(json.dumps({"kuhn": ablation.ablation_table(params, "kuhn", arms)}, sort_keys=True))


def test_the_report_and_the_ablation_agree_on_the_audit_entry():
    assert report.AUDIT_REFERENCE == ablation.AUDIT_REFERENCE


def test_the_ablation_audit_section_gives_each_arms_nash_conv_and_frequencies_against_nash():
    params = load_params(ROOT / "params.yaml")
    sft, _ = policy_evaluation(params, "kuhn", ScriptedAgent(params.strategy("kuhn", "TightValue")), name="sft",
                               source="scripted:TightValue")
    data = ablation_file()
    kuhn = data["kuhn"]
    assert kuhn["per_rollout-batch-best_response"]["nash_conv"]["value"] == pytest.approx(0.0, abs=1e-12)  # Nash
    assert set(kuhn["sft"]["frequencies"]) == {"j_bluff", "q_call", "k_bet"}
    inputs = report.ReportInputs(evaluations={"kuhn": {"sft": sft}}, ablation=data)
    assert report.ablation_audits(inputs) == ["kuhn"]
    markdown = report.render_markdown(inputs, "figures")
    title = "## Ablation on kuhn: Kuhn poker: exact exploitability of the played policy"
    assert title in markdown and "figures/ablation_kuhn_audit.svg" in markdown
    section = markdown[markdown.index(title):]
    line = section.splitlines()[2]
    assert line.startswith("NashConv of the played policy") and line.index("sft") < line.index("none-batch")
    for arm in ARMS:
        assert f"{arm} {report.with_interval(kuhn[arm]['nash_conv'])}" in line
    header, body = report.ablation_audit_table(inputs, "kuhn")
    assert header == ["run", "NashConv", "exploitability", "J bluff-bet", "Q call", "K bet"]
    assert [row[0] for row in body] == ["sft", "none-batch", "per_rollout-batch", "per_rollout-batch-best_response",
                                        "the α = 0.3333 equilibrium"]
    assert body[-1][3:] == ["0.333", "0.500", "1.000"]  # Nash's J bluff, Q call, K bet (means over both seats)
    svg = report.figures(inputs)["ablation_kuhn_audit.svg"]
    assert svg.count("<path") > 10
