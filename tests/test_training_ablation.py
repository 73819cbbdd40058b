"""The ablation: a paired difference by hand, and a whole (tiny) ablation run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sepo.comparison import row_difference
from sepo.config import load_params, parse_params
from sepo.games.protocol import play_scripted_episode
from sepo.training.ablation import plot_components, run_ablation
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


def _episodes(agent: str, seeds: range) -> list:
    game = PARAMS.game("ipd")
    return [play_scripted_episode(game, PARAMS.strategy("ipd", agent), PARAMS.strategy("ipd", opponent), seed,
                                  "exploit")
            for opponent in ("AlwaysDefect", "AlternatingDefect") for seed in seeds]


def tiny_kuhn_ablation(modes: tuple[str, ...], *, max_steps: int, workers: int) -> dict:
    """params.yaml as raw data, narrowed to a seconds-long Kuhn ablation of ``modes`` (batch scaling)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["kuhn"]["rounds"] = 2
    raw["sepo"].update(groups_per_step=1, num_threads=1)
    raw["generation"]["max_new_tokens"] = 8
    raw["eval"]["bootstrap_samples"] = 50
    arms = [{"mode": mode, "scale_rewards": "batch"} for mode in modes]
    replicated = [f"{mode}-batch" for mode in modes if f"{mode}-batch" in raw["ablation"]["replicate_arms"]]
    raw["ablation"].update(games=["kuhn"], max_steps=max_steps, eval_episodes=1, runs=arms, workers=workers,
                           replicate_arms=replicated)
    return raw


def test_paired_difference_by_hand():
    game = PARAMS.game("ipd")
    treated, control = _episodes("TitForTat", range(3)), _episodes("AlwaysCooperate", range(3))
    row = {"weights": PARAMS.games["ipd"].report_weights.model_dump()}  # a metrics file's only field read here
    difference = row_difference(game, (row, treated), (row, control), bootstrap_samples=200, confidence=0.95,
                                seed=0)["exploit"]
    # TitForTat: 5/8 against AlwaysDefect, 0 against AlternatingDefect (they trade 0/5 and 5/0);
    # AlwaysCooperate: 5 against AlwaysDefect, (32 - 12) / 8 = 2.5 against AlternatingDefect
    assert difference["value"] == pytest.approx((5 / 8 + 0.0) / 2 - (5.0 + 2.5) / 2)
    # deterministic agents: every resample is the same, so the interval is the point
    assert difference["ci_low"] == pytest.approx(difference["value"])
    assert difference["ci_high"] == pytest.approx(difference["value"])
    with pytest.raises(ValueError, match="same pools, opponents and seeds"):
        row_difference(game, (row, treated), (row, control[1:]), bootstrap_samples=10, confidence=0.9, seed=0)


@pytest.mark.slow
def test_a_tiny_ablation_reports_exact_zero_penalty_gradients_for_constant_and_none(tmp_path):
    params = parse_params(tiny_kuhn_ablation(("per_rollout", "constant", "none"), max_steps=2, workers=2))
    histories: dict[str, dict] = {}

    def keep_history(game, arm, result):
        histories.setdefault(game, {})[arm] = result.history

    table = run_ablation(params, tiny_model_dir(), on_arm=keep_history)
    kuhn = table["kuhn"]
    assert set(kuhn) == {"sft", "per_rollout-batch", "constant-batch", "none-batch", "paired_differences",
                         "audit_reference"}
    assert set(kuhn["paired_differences"]) == {"per_rollout-batch − none-batch", "constant-batch − none-batch"}
    for arm in ("constant-batch", "none-batch"):
        assert kuhn[arm]["penalty_grad_norm"] == {"mean": 0.0, "max": 0.0}
    # identical advantages, identical updates: the constant penalty changes nothing (SPEC section 5)
    assert kuhn["constant-batch"]["adapter_sha256"] == kuhn["none-batch"]["adapter_sha256"]
    assert all(v["value"] == 0.0 for v in kuhn["paired_differences"]["constant-batch − none-batch"].values())
    assert "nash_conv" in kuhn["per_rollout-batch"]
    assert [row["step"] for row in histories["kuhn"]["none-batch"]] == [1, 2]
    assert {"value", "ci_low", "ci_high"} <= set(kuhn["per_rollout-batch"]["exploit"])
    plot_components(histories, tmp_path / "components.png")
    assert (tmp_path / "components.png").stat().st_size > 0


def test_an_arm_can_set_its_own_best_response_mixture():
    from sepo.config import AblationRun
    from sepo.training.ablation import arm_name, arm_params

    run = AblationRun(mode="per_rollout", scale_rewards="batch", add_exploit=["BestResponse"],
                      best_response_mixture="average")
    assert arm_name(run) == "per_rollout-batch-best_response-average"
    trained = arm_params(PARAMS, "kuhn", run)
    assert trained.sepo.best_response_mixture == "average" != PARAMS.sepo.best_response_mixture
    assert trained.games["kuhn"].pools.exploit[-1] == "BestResponse"
    plain = AblationRun(mode="per_rollout", scale_rewards="batch", add_exploit=["BestResponse"])
    assert arm_name(plain) == "per_rollout-batch-best_response"
    assert arm_params(PARAMS, "kuhn", plain).sepo.best_response_mixture == PARAMS.sepo.best_response_mixture


@pytest.mark.slow
def test_the_ablation_stage_replaces_its_plots_folder_whole_with_one_dvclive_log_per_arm(tmp_path):
    import json
    import subprocess
    import sys

    from sepo.step_log import read_step_log

    raw = tiny_kuhn_ablation(("constant", "none"), max_steps=1, workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    stale = tmp_path / "plots" / "ipd" / "none-batch.tsv"  # the layout before DVCLive: must not linger
    stale.parent.mkdir(parents=True)
    stale.write_text("step\treward\n1\t0\n")

    done = subprocess.run([sys.executable, str(ROOT / "stages" / "ablation.py"), "--params", "params.yaml",
                           "--model", tiny_model_dir(), "--metrics", "ablation.json", "--plots", "plots"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-2000:]
    assert not stale.exists() and not (tmp_path / "plots" / "ipd").exists()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["components.png", "kuhn"]
    for arm in ("constant-batch", "none-batch"):
        assert [int(row["step"]) for row in read_step_log(tmp_path / "plots" / "kuhn" / arm)] == [1]
    table = json.loads((tmp_path / "ablation.json").read_text())
    assert set(table["kuhn"]) >= {"constant-batch", "none-batch"}
    assert set(table) == {"kuhn", "wall_time_s"} and table["wall_time_s"] > 0  # the stage's time beside its domains
