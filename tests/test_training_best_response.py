"""SEPO training against a BestResponse: refreshed every k steps from the step's rollouts, logged, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sepo.config import parse_params
from sepo.games.kuhn import INFOSETS
from sepo.policies.scripted.kuhn import TightValue
from sepo.rollout import ScriptedAgent
from sepo.training.adaptive import TABLE_PREFIX, AdaptiveOpponents
from sepo.training.groups import GroupKey
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
GROUP_SIZE = 4


def kuhn_params(refresh: int, **sepo) -> object:
    """Committed params, BestResponse in Kuhn's exploit pool, 2-hand episodes and short replies."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["kuhn"]["rounds"] = 2
    raw["games"]["kuhn"]["pools"]["exploit"].append("BestResponse")
    raw["ablation"]["runs"] = [run for run in raw["ablation"]["runs"] if not run.get("add_exploit")]
    raw["generation"]["max_new_tokens"] = 8
    raw["sepo"].update({"num_threads": 1, "best_response_refresh_steps": refresh, **sepo})
    raw["grpo"]["num_generations"] = GROUP_SIZE
    return parse_params(raw)


def test_the_refresh_schedule_and_the_restored_table():
    params = kuhn_params(3)
    game = params.game("kuhn")
    opponents = {s.name: s for s in params.pool("kuhn", "exploit")}
    adaptive = AdaptiveOpponents(game, opponents, 3)
    assert adaptive.names == ("BestResponse",)
    assert adaptive.refresh_due(5)  # nothing bound yet: whatever the step
    table = TightValue().policy_table()
    history = [{"step": 1, **{TABLE_PREFIX + k: 0.5 for k in INFOSETS}},
               {"step": 2, **{TABLE_PREFIX + k: v for k, v in table.items()}}, {"step": 2, "train_loss": 1.0}]
    adaptive.restore(history)  # a resumed run: the table in force at the last logged step
    assert adaptive.agent_policy == table
    assert [step for step in range(8) if adaptive.refresh_due(step)] == [0, 3, 6]
    logged = adaptive.log_metrics(refreshed=False)
    assert logged["best_response_refresh"] == 0.0 and logged["best_response_nash_conv"] == pytest.approx(1 / 3)
    assert not AdaptiveOpponents(game, {s.name: s for s in params.pool("kuhn", "train")}, 3)


def test_a_refresh_step_measures_the_other_rollouts_before_the_best_response_plays(tmp_path):
    from sepo.training.rollout import GroupRollout
    from sepo.training.run import RunPlan, build_trainer, load_policy_model

    params = kuhn_params(2, groups_per_step=2)
    model, tokenizer = load_policy_model(params, tiny_model_dir())
    trainer = build_trainer(params, RunPlan.from_params(params, "kuhn", max_steps=1), model, tokenizer, tmp_path)
    rollout = GroupRollout(params, "kuhn", "per_rollout", 0, tokenizer,
                           lambda _t, _s: ScriptedAgent(TightValue()))
    keys = (GroupKey("kuhn", "train", "LooseAggressive", 5), GroupKey("kuhn", "exploit", "BestResponse", 6))
    out = rollout([k.prompt for k in keys for _ in range(GROUP_SIZE)], trainer)
    assert out["pool"] == ["train"] * GROUP_SIZE + ["exploit"] * GROUP_SIZE
    # TightValue is deterministic: every set its 4 train episodes reached is measured as its own 0 or 1
    table = rollout.adaptive.agent_policy
    assert {table[k] for k in INFOSETS} <= {0.0, 0.5, 1.0}
    assert all(table[k] == TightValue().policy_table()[k] for k in INFOSETS if table[k] != 0.5)
    logged = trainer._metrics["train"]
    assert logged["best_response_refresh"] == [1.0]
    # a refresh step with best-response groups only measures on dedicated train-pool episodes
    rollout.adaptive.agent_policy = None
    rollout([keys[1].prompt] * GROUP_SIZE, trainer)
    assert logged["best_response_refresh"] == [1.0, 1.0] and rollout.adaptive.agent_policy is not None


@pytest.mark.slow
def test_a_tiny_run_refreshes_the_best_response_every_k_steps(tmp_path):
    from sepo.training.run import RunPlan, train

    params = kuhn_params(2, groups_per_step=2, max_steps=5, save_steps=5)
    outcome = train(params, RunPlan.from_params(params, "kuhn"), tiny_model_dir(), tmp_path / "run")
    logged = [e for e in outcome.trainer.state.log_history if "best_response_refresh" in e]
    assert [e["step"] for e in logged] == [1, 2, 3, 4, 5]
    # refreshed before the updates of steps 0, 2 and 4 (logged as steps 1, 3, 5)
    assert [e["best_response_refresh"] for e in logged] == [1.0, 0.0, 1.0, 0.0, 1.0]
    tables = [{k: e[TABLE_PREFIX + k] for k in INFOSETS} for e in logged]
    assert tables[1] == tables[0] and tables[3] == tables[2]  # bound to the same table between refreshes
    from sepo.exploitability import nash_conv

    assert all(e["best_response_nash_conv"] == pytest.approx(nash_conv(t)) for e, t in zip(logged, tables,
                                                                                            strict=True))
    rows = outcome.history
    assert [row["best_response_refresh"] for row in rows] == [1.0, 0.0, 1.0, 0.0, 1.0]
    # checkpoint selection scores the pools too: its best response is bound to each checkpoint's own table
    from sepo.training.selection import select_checkpoint

    model = outcome.trainer.accelerator.unwrap_model(outcome.trainer.model)
    selection = select_checkpoint(params, "kuhn", model, outcome.trainer.processing_class, tmp_path / "run", 5)
    assert selection.best_step == 5


@pytest.mark.slow
def test_a_tiny_ablation_has_the_best_response_arm_on_kuhn_only_with_nash_conv_everywhere():
    from sepo.training.ablation import run_ablation

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["kuhn"]["rounds"] = 2
    raw["games"]["ipd"]["rounds"] = 2
    raw["sepo"].update(groups_per_step=2, num_threads=1)
    raw["generation"]["max_new_tokens"] = 8
    raw["eval"]["bootstrap_samples"] = 50
    arms = [{"mode": "per_rollout", "scale_rewards": "batch"}, {"mode": "none", "scale_rewards": "batch"},
            {"mode": "per_rollout", "scale_rewards": "batch", "add_exploit": ["BestResponse"]}]
    raw["ablation"].update(games=["ipd", "kuhn"], max_steps=2, eval_episodes=1, runs=arms, workers=2)
    table = run_ablation(parse_params(raw), tiny_model_dir())
    assert "per_rollout-batch-best_response" not in table["ipd"]
    kuhn = table["kuhn"]
    for arm in ("sft", "per_rollout-batch", "none-batch", "per_rollout-batch-best_response"):
        assert {"value", "ci_low", "ci_high"} <= set(kuhn[arm]["nash_conv"]), arm
        assert set(kuhn[arm]["frequencies"]) == {"j_bluff", "q_call", "k_bet"}
    assert kuhn["per_rollout-batch-best_response"]["best_response"]["refreshes"] == 1  # steps 0 (k = 2)
    assert "best_response" not in kuhn["per_rollout-batch"]
    assert "per_rollout-batch-best_response − none-batch" in kuhn["paired_differences"]
    assert kuhn["audit_reference"]["reference_frequencies"]["k_bet"] == 1.0


def _schedule(adaptive: AdaptiveOpponents, tables: list[dict[str, float]], refresh: int) -> list[dict]:
    """Bind ``adaptive`` as an uninterrupted run would, refreshing every ``refresh`` steps; its log rows."""
    rows = []
    for step in range(len(tables) * refresh):
        due = adaptive.refresh_due(step)
        if due:
            adaptive._bind(tables[step // refresh])
        rows.append({"step": step + 1, **adaptive.log_metrics(due)})
    return rows


def _targets(adaptive: AdaptiveOpponents, spec, seeds) -> list[tuple[float, ...]]:
    from dataclasses import replace

    return [adaptive.spec(replace(spec, seed=seed)).opponent.target for seed in seeds]


def test_fictitious_play_draws_every_refreshs_best_response_uniformly_per_seed_and_resumes_them_all():
    from sepo.exploitability import best_response_table, nash_conv, table_advantage
    from sepo.policies.scripted.kuhn import AlwaysBet, TightPassive
    from sepo.rollout import EpisodeSpec

    params = kuhn_params(2)
    game = params.game("kuhn")
    opponents = {s.name: s for s in params.pool("kuhn", "exploit")}
    tables = [TightValue().policy_table(), AlwaysBet().policy_table(), TightPassive().policy_table()]
    responses = [best_response_table(t) for t in tables]
    assert len({tuple(r.values()) for r in responses}) == 3  # three different best responses to tell apart
    average = AdaptiveOpponents(game, opponents, 2, "average")
    rows = _schedule(average, tables[:2], 2)
    assert average.tables == tables[:2]
    spec = EpisodeSpec(game, opponents["BestResponse"], "exploit", 0)
    seeds = range(4_000)
    targets = _targets(average, spec, seeds)
    first, second = (tuple(t[k] for k in INFOSETS) for t in tables[:2])
    assert set(targets) == {first, second}
    assert abs(targets.count(first) / len(targets) - 1 / 2) < 0.03  # uniform over the two (3.8 sigma)
    assert _targets(average, spec, seeds) == targets  # a function of the episode's seed
    # every G episode of a group shares its seed, so a group meets one response
    assert len({average.spec(spec).opponent.target for _ in range(GROUP_SIZE)}) == 1
    # the logged advantage is the mixture's against the latest table; the NashConv is the latest table's
    logged = rows[-1]
    assert logged["best_response_nash_conv"] == pytest.approx(nash_conv(tables[1]))
    assert logged["best_response_mixture_size"] == 2.0
    assert logged["best_response_advantage"] == pytest.approx(
        (table_advantage(responses[0], tables[1]) + table_advantage(responses[1], tables[1])) / 2)
    assert logged["best_response_advantage"] < logged["best_response_nash_conv"]
    # a run resumed from the checkpoint's log history holds the whole history, and draws the same
    resumed = AdaptiveOpponents(game, opponents, 2, "average")
    resumed.restore(rows)
    assert resumed.tables == tables[:2] and _targets(resumed, spec, seeds) == targets
    # a third refresh: thirds, and the seeds draw afresh (the draw also depends on the history's length)
    assert not resumed.refresh_due(3) and resumed.refresh_due(4)
    resumed._bind(tables[2])  # step 4's refresh
    assert resumed.tables == tables
    thirds = _targets(resumed, spec, seeds)
    for table in tables:
        assert abs(thirds.count(tuple(table[k] for k in INFOSETS)) / len(thirds) - 1 / 3) < 0.03
    # latest: only the last refresh's response plays, whatever the seed; a resumed run restores only that
    latest = AdaptiveOpponents(game, opponents, 2, "latest")
    rows = _schedule(latest, tables[:2], 2)
    assert set(_targets(latest, spec, seeds[:50])) == {second}
    assert rows[-1]["best_response_advantage"] == pytest.approx(rows[-1]["best_response_nash_conv"])
    assert rows[-1]["best_response_mixture_size"] == 1.0
    restored = AdaptiveOpponents(game, opponents, 2, "latest")
    restored.restore(rows)
    assert restored.agent_policy == tables[1] and len(restored.bound["BestResponse"]) == 1
    with pytest.raises(ValueError, match="best-response mixture 'newest'"):
        AdaptiveOpponents(game, opponents, 2, "newest")


def test_fictitious_play_in_the_rollout_keeps_every_refreshs_table_and_logs_the_mixture(tmp_path):
    from sepo.policies.scripted.kuhn import AlwaysBet
    from sepo.training.rollout import GroupRollout
    from sepo.training.run import RunPlan, build_trainer, load_policy_model

    params = kuhn_params(2, groups_per_step=2, best_response_mixture="average")
    model, tokenizer = load_policy_model(params, tiny_model_dir())
    trainer = build_trainer(params, RunPlan.from_params(params, "kuhn", max_steps=1), model, tokenizer, tmp_path)
    agents = {0: TightValue(), 2: AlwaysBet()}
    rollout = GroupRollout(params, "kuhn", "per_rollout", 0, tokenizer,
                           lambda t, _s: ScriptedAgent(agents[t.state.global_step]))
    keys = (GroupKey("kuhn", "train", "LooseAggressive", 5), GroupKey("kuhn", "exploit", "BestResponse", 6))
    for step in (0, 2):
        trainer.state.global_step = step
        rollout([k.prompt for k in keys for _ in range(GROUP_SIZE)], trainer)
    adaptive = rollout.adaptive
    assert len(adaptive.tables) == 2 and adaptive.tables[0] != adaptive.tables[1]
    assert [r.target_table() for r in adaptive.bound["BestResponse"]] == adaptive.tables
    logged = trainer._metrics["train"]
    assert logged["best_response_refresh"] == [1.0, 1.0] and logged["best_response_mixture_size"] == [1.0, 2.0]
    assert logged["best_response_advantage"][1] == pytest.approx(adaptive.expected_advantage())
