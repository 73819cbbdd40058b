"""The paper-claims table: each verdict follows its rule from the metrics files, and missing inputs never hold."""

from __future__ import annotations

from sepo.claims import FAILS, HOLDS, UNMEASURED, paper_claims


def ci(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "ci_low": low, "ci_high": high}


def row(safety: dict[str, float]) -> dict:
    return {"metrics": {"safety": safety, "exploit": ci(0.0, 0.0, 0.1), "nra": ci(0.1, 0.05, 0.2)}}


GAMES = ("ipd", "auction", "negotiation", "negotiation_items", "kuhn")


def evaluations(sepo_safety_low: float = 0.3) -> dict:
    return {g: {"sepo": row(safety=ci(0.5, sepo_safety_low, 0.7)), "base": row(safety=ci(-1.0, -1.2, -0.8))}
            for g in GAMES}


def ablation(same_adapter: bool = True, norm: float = 0.0) -> dict:
    return {"ipd": {"constant-batch": {"adapter_sha256": "a", "penalty_grad_norm": {"max": norm}},
                    "none-batch": {"adapter_sha256": "a" if same_adapter else "b", "penalty_grad_norm": {"max": 0}}}}


def verdicts(evals, comparisons, abl) -> list[str]:
    return [c.verdict for c in paper_claims(evals, comparisons, abl)]


def test_every_claim_holds_when_its_rule_is_met():
    comparisons = {"differences": {"ipd": {"exploit": ci(-0.3, -0.5, -0.1)}}}
    assert verdicts(evaluations(), comparisons, ablation()) == [HOLDS] * 5


def test_each_rule_can_fail():
    comparisons = {"differences": {"ipd": {"exploit": ci(-0.3, -0.5, 0.1)}}}  # interval holds 0
    evals = evaluations(sepo_safety_low=-1.0)  # SEPO's interval overlaps base's everywhere
    evals["kuhn"]["sepo"]["metrics"]["exploit"] = ci(0.2, 0.1, 0.3)
    evals["negotiation"]["sepo"]["metrics"]["nra"] = ci(0.0, -0.1, 0.1)
    assert verdicts(evals, comparisons, ablation(same_adapter=False)) == [FAILS] * 5
    assert verdicts(evaluations(), comparisons, ablation(norm=1e-3))[4] == FAILS


def test_missing_inputs_are_not_measured_never_holds():
    assert verdicts({}, {}, {}) == [UNMEASURED] * 5


def test_the_acceptance_checks_count_domains_and_seeds():
    from sepo.claims import acceptance_checks

    up, flat = ci(0.3, 0.1, 0.5), ci(0.1, -0.1, 0.3)
    differences = {g: {"safety": up, "exploit": ci(-0.1, -0.2, 0.0), "collusion": flat, "externality": flat}
                   for g in GAMES}
    replicates = {"ipd": {"sepo-seed1": differences["ipd"], "sepo-seed2": {**differences["ipd"],
                                                                          "safety": ci(-0.1, -0.3, 0.1)}}}
    checks = acceptance_checks({"differences": differences, "replicates": replicates})
    assert [c.verdict for c in checks[:3]] == [HOLDS, HOLDS, HOLDS]  # 2 of 3 ipd seeds suffice
    differences["kuhn"] = {**differences["kuhn"], "collusion": ci(0.2, 0.1, 0.3)}  # a penalty got worse
    for g in ("auction", "negotiation", "negotiation_items"):
        differences[g] = {**differences[g], "safety": flat}  # only 2 domains significant
    checks = acceptance_checks({"differences": differences, "replicates": replicates})
    assert [c.verdict for c in checks[:3]] == [FAILS, FAILS, HOLDS]
    assert "kuhn collusion" in checks[1].evidence
    assert [c.verdict for c in acceptance_checks({})] == [UNMEASURED] * 5


def arm_differences(**safety: dict[str, float]) -> dict:
    """An ablation file's paired per_rollout-batch − none-batch safety per domain."""
    return {g: {"paired_differences": {"per_rollout-batch − none-batch": {"safety": d}}} for g, d in safety.items()}


def test_the_ablation_check_wants_ipd_significant_and_no_domain_significantly_below():
    from sepo.claims import penalty_beats_payoff_only

    up, flat, down = ci(0.13, 0.05, 0.25), ci(-0.05, -0.2, 0.1), ci(-0.2, -0.3, -0.1)
    assert penalty_beats_payoff_only(arm_differences(ipd=up, kuhn=flat)).verdict == HOLDS
    assert penalty_beats_payoff_only(arm_differences(ipd=flat, kuhn=up)).verdict == FAILS  # IPD must be significant
    assert penalty_beats_payoff_only(arm_differences(ipd=up, kuhn=down)).verdict == FAILS  # Kuhn significantly below
    holds = penalty_beats_payoff_only(arm_differences(ipd=up, kuhn=flat))
    assert "ipd +0.130 [+0.050, +0.250]" in holds.evidence and "kuhn" in holds.evidence
    # an ablation without IPD's arms, or without the arms at all, is not measured
    assert penalty_beats_payoff_only(arm_differences(kuhn=up)).verdict == UNMEASURED
    assert penalty_beats_payoff_only({"ipd": {"paired_differences": {}}}).verdict == UNMEASURED


def test_the_ablation_verdict_across_seeds_needs_it_in_two_of_three():
    from sepo.claims import penalty_beats_payoff_only_across_seeds as across

    up, flat, down = ci(0.13, 0.05, 0.25), ci(-0.05, -0.2, 0.1), ci(-0.2, -0.3, -0.1)
    good, ipd_flat, kuhn_down = (arm_differences(ipd=up, kuhn=flat), arm_differences(ipd=flat, kuhn=up),
                                 arm_differences(ipd=up, kuhn=down))
    held = across(good, {1: ipd_flat, 2: good})
    assert held.verdict == HOLDS and held.evidence.startswith("2 of 3 seeds")
    assert "seed 1 does not hold: ipd -0.050" in held.evidence
    assert across(good, {1: ipd_flat, 2: kuhn_down}).verdict == FAILS  # only the ablation's own seed
    assert across(ipd_flat, {1: kuhn_down, 2: good}).verdict == FAILS
    assert across(good, {}).verdict == UNMEASURED  # no replicate: one seed is not robustness
    assert across(good, {1: arm_differences(kuhn=up), 2: good}).verdict == UNMEASURED  # a replicate without IPD


def test_the_claims_name_the_arms_as_the_ablation_does():
    """claims.py reads files and imports no training code, so its arm names are literals: the ablation's."""
    from sepo import claims
    from sepo.config import AblationRun
    from sepo.training import ablation

    assert claims.PAYOFF_ONLY_ARM == ablation.CONTROL_ARM
    assert ablation.arm_name(AblationRun(mode="per_rollout", scale_rewards="batch")) == claims.SEPO_ARM
