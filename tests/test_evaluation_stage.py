"""The evaluate stage: its metrics file, its episode log, and recomputing every number from the log."""

from __future__ import annotations

import json

import pytest
import yaml

from sepo.episode_log import episode_to_json, iter_episode_lines, read_episodes, write_episodes
from sepo.evaluation import policy_evaluation
from sepo.exploitability import nash_conv
from sepo.games.kuhn import INFOSETS
from sepo.metrics import evaluate_episodes
from sepo.rollout import ScriptedAgent
from stages import evaluate as evaluate_stage
from tests.model_fixtures import GAMES, PARAMS, ROOT, tiny_model_dir


def recomputed(result: dict, log) -> dict:
    """Every metric recomputed from the episode log and the metrics file's own settings."""
    records = read_episodes(log)
    return evaluate_episodes(PARAMS.game(result["game"]), records, result["weights"],
                             bootstrap_samples=PARAMS.eval.bootstrap_samples, confidence=PARAMS.eval.confidence,
                             seed=result["seed"])


def recomputed_audit(result: dict, log) -> dict:
    """A model row's strategy audit recomputed from its episode log and the section's probe results."""
    audit = PARAMS.game(result["game"]).strategy_audit()
    return audit.summarise(read_episodes(log), result["audit"]["unreached"], exact_strategy=None,
                           bootstrap_samples=PARAMS.eval.bootstrap_samples, confidence=PARAMS.eval.confidence,
                           seed=result["seed"])


@pytest.mark.parametrize("game", GAMES)
def test_reference_row_is_recomputed_exactly_from_its_episode_log(tmp_path, game):
    out, log = tmp_path / "m.json", tmp_path / "e.jsonl.gz"
    assert evaluate_stage.main(["--game", game, "--policy", "equilibrium", "--out", str(out),
                                "--episodes", str(log)]) == 0
    result = json.loads(out.read_text())
    assert result["source"] == f"scripted:{PARAMS.eval.references[game]['equilibrium']}"
    assert recomputed(result, log) == result["metrics"]
    lines = list(iter_episode_lines(log))
    opponents = {(p, o.name) for p in ("train", "exploit", "collusive", "shift") for o in PARAMS.pool(game, p)}
    assert {(line["pool"], line["opponent"]) for line in lines} == opponents
    assert len(lines) == len(opponents) * PARAMS.eval.episodes_for("equilibrium", game)
    first = lines[0]["rounds"][0]
    assert {"moves", "private", "payoffs", "decisions", "public"} <= set(first)
    assert first["decisions"][0]["reply"].startswith("Action: ") and first["decisions"][0]["valid"] is True


def test_a_row_can_have_its_own_episode_count(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["eval"]["row_episodes"] = {"reciprocal": 2}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    counts = {}
    for role in ("reciprocal", "equilibrium"):
        out, log = tmp_path / f"{role}.json", tmp_path / f"{role}.jsonl.gz"
        assert evaluate_stage.main(["--params", str(params), "--game", "auction", "--policy", role,
                                    "--out", str(out), "--episodes", str(log)]) == 0
        counts[role] = (json.loads(out.read_text())["episodes_per_opponent"], len(read_episodes(log)))
    opponents = sum(len(PARAMS.pool("auction", p)) for p in ("train", "exploit", "collusive", "shift"))
    assert counts == {"reciprocal": (2, 2 * opponents),
                      "equilibrium": (PARAMS.eval.episodes, PARAMS.eval.episodes * opponents)}


def test_log_round_trip_is_lossless_and_byte_stable(tmp_path):
    agent = ScriptedAgent(PARAMS.strategy("negotiation_items", "Adaptive"))
    _, records = policy_evaluation(PARAMS, "negotiation_items", agent, name="x", source="scripted:Adaptive")
    write_episodes(tmp_path / "a.gz", records)
    write_episodes(tmp_path / "b.gz", read_episodes(tmp_path / "a.gz"))
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert [episode_to_json(r) for r in read_episodes(tmp_path / "a.gz")] == \
        [json.loads(json.dumps(episode_to_json(r))) for r in records]


def test_a_tampered_log_no_longer_reproduces_the_metrics(tmp_path):
    """The recomputation really reads the log: change one payoff and the numbers move."""
    out, log = tmp_path / "m.json", tmp_path / "e.jsonl.gz"
    evaluate_stage.main(["--game", "ipd", "--policy", "reciprocal", "--out", str(out), "--episodes", str(log)])
    result = json.loads(out.read_text())
    records = read_episodes(log)
    train = next(r for r in records if r.pool == "train")
    train.rounds[0] = type(train.rounds[0])(**{**train.rounds[0].__dict__, "payoffs": (5.0, 0.0)})
    write_episodes(log, records)
    assert recomputed(result, log)["pay"]["value"] != result["metrics"]["pay"]["value"]


def test_model_row_logs_raw_replies_and_its_kuhn_table_gives_the_reported_nash_conv(tmp_path_factory, tmp_path):
    model = tiny_model_dir(str(tmp_path_factory.getbasetemp()))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())  # a random model: few episodes, short replies
    raw["eval"]["episodes"], raw["eval"]["game_episodes"], raw["generation"]["max_new_tokens"] = 2, {}, 12
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    out, log = tmp_path / "m.json", tmp_path / "e.jsonl.gz"
    assert evaluate_stage.main(["--params", str(params_file), "--game", "kuhn", "--policy", "sft", "--model",
                                str(model), "--out", str(out), "--episodes", str(log)]) == 0
    result = json.loads(out.read_text())
    assert result["source"] == f"model:{model}" and result["generation"]["max_new_tokens"] == 12
    assert result["metrics"]["episode_count"] == 2 * 8  # 8 Kuhn opponents over the four pools
    assert recomputed(result, log) == result["metrics"]
    decisions = [d for line in iter_episode_lines(log) for r in line["rounds"] for d in r["decisions"]]
    assert not all(d["reply"].startswith("Action:") for d in decisions)  # a random model's raw text is kept
    assert result["metrics"]["invalid_rate"]["value"] == pytest.approx(
        sum(not d["valid"] for d in decisions) / len(decisions))  # pooled over every decision
    assert all(set(d["probabilities"]) == set(d["legal_actions"]) for d in decisions)
    audit = result["audit"]
    table = audit["policy_table"]
    assert sorted(table) == sorted(INFOSETS) and all(0.0 <= p <= 1.0 for p in table.values())
    assert nash_conv(table) == pytest.approx(audit["scalars"]["nash_conv"]["value"], abs=1e-12)
    assert recomputed_audit(result, log) == audit
    # every set the evaluation never reached was probed with the configured number of episodes' decisions
    never = [key for key, n in audit["infoset_decisions"].items() if n == 0]
    assert sorted(audit["unreached"]) == sorted(never)


@pytest.mark.parametrize("argv, message", [
    (["--game", "chess", "--policy", "equilibrium"], "unknown game 'chess'"),
    (["--game", "ipd", "--policy", "nash"], "unknown ipd reference role"),
    (["--game", "ipd", "--policy", "sft", "--model", "no/such/dir/"], "no/such/dir"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out, log = tmp_path / "m.json", tmp_path / "e.jsonl.gz"
    assert evaluate_stage.main([*argv, "--out", str(out), "--episodes", str(log)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists() and not log.exists()
