"""Kuhn's strategy audit: the played policy, its exact exploitability, probes for unreached sets, pairing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sepo.bootstrap import Strata
from sepo.comparison import pooled_difference, row_difference
from sepo.evaluation import evaluate_policy, with_audit_fields
from sepo.exploitability import nash_conv
from sepo.games.kuhn_audit import KuhnAudit, decision_infosets, episode_rows
from sepo.games.protocol import play_scripted_episode
from sepo.policies.action_scores import probabilities_from_scores, scored_records
from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes
from tests.model_fixtures import PARAMS

GAME = PARAMS.game("kuhn")
SETTINGS = {"bootstrap_samples": 200, "confidence": 0.95, "seed": 0}


class ReasonsThenActs:
    """A stand-in model policy: its replies reason towards BET, but straight after a prompt it favours CHECK.

    It implements the three things ``scored_records`` uses of a ``ModelPolicy``: ``render``,
    ``action_log_scores`` and ``sampling``.  Its scores depend on the text before ``Action:``, which is
    exactly what the played-policy measure must keep.
    """

    sampling = type("S", (), {"temperature": 1.0, "greedy": False, "top_p": 1.0, "top_k": 0})()
    name = "reasons-then-acts"

    def render(self, messages):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def action_log_scores(self, contexts, legal_actions, cache_keys=None, keep=False):
        out = []
        for context, legal in zip(contexts, legal_actions, strict=True):
            bet_first = context.endswith("I will bet.\n")
            aggressive = next(a for a in legal if a in ("BET", "CALL"))
            out.append({a: (0.0 if (a == aggressive) == bet_first else -3.0) for a in legal})
        return out

    def decide(self, requests):
        from sepo.rollout import AgentReply

        replies = []
        for r in requests:
            action = next(a for a in r.view.legal_actions if a in ("BET", "CALL"))
            replies.append(AgentReply(text=f"I will bet.\nAction: {action}", action=action))
        return replies


class WithoutTable:
    """A scripted strategy whose table is hidden, so the audit measures it as played."""

    def __init__(self, name: str) -> None:
        self.inner = PARAMS.strategy("kuhn", name)
        self.name = f"{name}-as-played"

    def act(self, view, rng):
        return self.inner.act(view, rng)


def test_the_measure_keeps_the_reasoning_before_the_action():
    specs = [EpisodeSpec(GAME, PARAMS.strategy("kuhn", "AlwaysPass"), "shift", seed) for seed in range(4)]
    played = play_episodes(specs, ReasonsThenActs())
    records = scored_records(ReasonsThenActs(), played)
    p_bet = np.exp(0.0) / (np.exp(0.0) + np.exp(-3.0))
    for record in records:
        for d in record.decisions:
            aggressive = next(a for a in d.legal_actions if a in ("BET", "CALL"))
            assert d.probabilities[aggressive] == pytest.approx(p_bet)  # not the prompt-only 1 - p_bet
    summary = KuhnAudit(GAME).summarise(records, {}, exact_strategy=None, **SETTINGS)
    reached = [k for k, n in summary["infoset_decisions"].items() if n]
    assert all(summary["policy_table"][k] == pytest.approx(p_bet) for k in reached)


def test_a_reply_without_an_action_line_counts_as_the_action_played():
    specs = [EpisodeSpec(GAME, PARAMS.strategy("kuhn", "AlwaysBet"), "exploit", 0)]
    agent = ScriptedAgent(PARAMS.strategy("kuhn", "AlwaysPass"))
    played = play_episodes(specs, agent)
    played[0].record.decisions[:] = [replace(d, reply="hmm") for d in played[0].record.decisions]
    records = scored_records(ReasonsThenActs(), played)
    assert all(d.probabilities[d.action] == 1.0 for d in records[0].decisions)


def test_probabilities_follow_the_sampling_temperature():
    scores = {"BET": np.log(0.8), "CHECK": np.log(0.2)}
    assert probabilities_from_scores(scores, 1.0, False)["BET"] == pytest.approx(0.8)
    cold = probabilities_from_scores(scores, 0.5, False)["BET"]
    assert cold == pytest.approx(0.64 / (0.64 + 0.04))
    assert probabilities_from_scores(scores, 0.8, True) == {"BET": 1.0, "CHECK": 0.0}


def test_probabilities_follow_the_samplers_top_p_and_top_k():
    scores = {"BET": np.log(0.9), "CHECK": np.log(0.1)}
    # top-p 0.95: CHECK is kept (BET alone holds 0.9 < 0.95), so nothing changes
    assert probabilities_from_scores(scores, 1.0, False, top_p=0.95)["CHECK"] == pytest.approx(0.1)
    # top-p 0.85: BET alone already holds 0.85, so CHECK is never drawn
    assert probabilities_from_scores(scores, 1.0, False, top_p=0.85) == {"BET": 1.0, "CHECK": 0.0}
    three = {"a": np.log(0.5), "b": np.log(0.3), "c": np.log(0.2)}
    assert probabilities_from_scores(three, 1.0, False, top_k=2) == pytest.approx({"a": 0.625, "b": 0.375, "c": 0.0})


def test_decision_infosets_follow_the_betting_of_each_hand():
    record = play_scripted_episode(GAME, PARAMS.strategy("kuhn", "AlwaysPass"), PARAMS.strategy("kuhn", "AlwaysBet"),
                                   seed=3)
    keys = decision_infosets(record)
    # hand 1 the agent opens and checks, the opponent bets: "X" then "Xpb"; hand 2 the opponent bets first: "Xb"
    hands = {r.round: r.private[0] for r in record.rounds}
    assert keys[:3] == [hands[1], hands[1] + "pb", hands[2] + "b"]


def test_a_scripted_strategy_keeps_its_exact_table():
    agent = ScriptedAgent(PARAMS.strategy("kuhn", "NashApprox"))
    result, played = evaluate_policy(PARAMS, "kuhn", agent, episodes=2)
    result, _ = with_audit_fields(PARAMS, "kuhn", agent, result, played)
    audit = result["audit"]
    assert audit["scalars"]["nash_conv"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert audit["policy_table"] == pytest.approx(agent.strategy.policy_table())


def test_a_played_table_is_the_mean_of_the_logged_probabilities_and_gives_its_nash_conv():
    agent = ScriptedAgent(WithoutTable("RandomLegal"))  # no exact table: measured as played
    result, played = evaluate_policy(PARAMS, "kuhn", agent, episodes=4)
    result, records = with_audit_fields(PARAMS, "kuhn", agent, result, played)
    audit = result["audit"]
    rows = episode_rows(records).sum(axis=0)
    for i, key in enumerate(audit["policy_table"]):
        if rows[12 + i]:
            assert audit["policy_table"][key] == pytest.approx(rows[i] / rows[12 + i])
    assert nash_conv(audit["policy_table"]) == pytest.approx(audit["scalars"]["nash_conv"]["value"])
    low, high = audit["scalars"]["nash_conv"]["ci_low"], audit["scalars"]["nash_conv"]["ci_high"]
    assert low < audit["scalars"]["nash_conv"]["value"] < high


def test_unreached_sets_are_probed_at_the_right_card_and_betting():
    audit = KuhnAudit(GAME)
    never_checks = ScriptedAgent(PARAMS.strategy("kuhn", "AlwaysBet"))
    specs = [EpisodeSpec(GAME, PARAMS.strategy("kuhn", "AlwaysPass"), "shift", s) for s in range(3)]
    records = [p.record for p in play_episodes(specs, never_checks)]
    wanted = audit.probe_episodes(records, replies=3, seed=0)
    labels = sorted({label for label, _, _ in wanted})
    assert labels == ["Jb", "Jpb", "Kb", "Kpb", "Qb", "Qpb"]  # it bets as first mover; AlwaysPass never bets
    played = play_episodes([EpisodeSpec(GAME, opponent, "probe", seed) for _, opponent, seed in wanted],
                           ScriptedAgent(PARAMS.strategy("kuhn", "AlwaysPass")))  # a checker reaches the pb sets
    probes = {}
    for (label, _, _), p in zip(wanted, played, strict=True):
        probes.setdefault(label, []).append(p.record)
    unreached = audit.unreached(probes)
    assert all(u["decisions"] >= 3 for u in unreached.values())
    assert all(u["probability"] == 0.0 for u in unreached.values())  # AlwaysPass folds facing every bet


def test_identical_rows_differ_by_exactly_zero_and_misaligned_rows_are_refused():
    agent = ScriptedAgent(WithoutTable("RandomLegal"))
    result, played = evaluate_policy(PARAMS, "kuhn", agent, episodes=3)
    result, records = with_audit_fields(PARAMS, "kuhn", agent, result, played)
    diff = row_difference(GAME, (result, records), (result, records), **SETTINGS)
    assert set(diff) >= {"exploit", "collusion", "externality", "safety", "nash_conv"}
    assert all(v == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0} for v in diff.values())
    with pytest.raises(ValueError, match="same pools, opponents and seeds"):
        row_difference(GAME, (result, records), (result, records[1:]), **SETTINGS)


def test_paired_intervals_are_narrower_than_the_unpaired_spread():
    """Two policies on the same seeds: the paired samples of a difference vary less than unpaired ones."""
    rows = {}
    for name in ("RandomLegal", "LooseAggressive"):
        agent = ScriptedAgent(WithoutTable(name))
        result, played = evaluate_policy(PARAMS, "kuhn", agent, episodes=8)
        rows[name] = with_audit_fields(PARAMS, "kuhn", agent, result, played)
    (ra, a), (rb, b) = rows["RandomLegal"], rows["LooseAggressive"]
    strata = Strata.of(a)
    rng = np.random.default_rng(1)
    same = strata.sample_indices(300, rng)
    other = strata.sample_indices(300, rng)
    audit = KuhnAudit(GAME)
    sa = audit.scalar_samples(a, ra["audit"], same)["nash_conv"]
    paired = sa - audit.scalar_samples(b, rb["audit"], same)["nash_conv"]
    unpaired = sa - audit.scalar_samples(b, rb["audit"], other)["nash_conv"]
    assert np.std(paired) <= np.std(unpaired) * 1.05


def test_the_pooled_difference_of_seeds_is_the_mean_of_their_differences():
    rows = {}
    for name in ("RandomLegal", "LooseAggressive", "TightPassive"):
        agent = ScriptedAgent(WithoutTable(name))
        result, played = evaluate_policy(PARAMS, "kuhn", agent, episodes=3)
        rows[name] = with_audit_fields(PARAMS, "kuhn", agent, result, played)
    control = rows["TightPassive"]
    one = row_difference(GAME, rows["RandomLegal"], control, **SETTINGS)
    two = row_difference(GAME, rows["LooseAggressive"], control, **SETTINGS)
    pooled = pooled_difference(GAME, [rows["RandomLegal"], rows["LooseAggressive"]], control, **SETTINGS)
    assert set(pooled) == set(one)
    for name in one:
        assert pooled[name]["value"] == pytest.approx((one[name]["value"] + two[name]["value"]) / 2)
        assert pooled[name]["ci_low"] <= pooled[name]["value"] <= pooled[name]["ci_high"]
    same = pooled_difference(GAME, [rows["RandomLegal"]], control, **SETTINGS)
    assert same == one  # one seed: the pooled difference is that seed's, interval included
