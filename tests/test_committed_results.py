"""The committed results belong to the committed code and params, and every number can be rechecked.

These tests read the repository's own ``metrics/eval`` (written by the last
full ``dvc repro``, committed with its ``dvc.lock``): every metric is
recomputed from its episode log, every safety from its components, every
strategy audit (Kuhn's exploitability of the played policy) from the log,
every paired comparison from the two rows' logs; a model row's Kuhn table
agrees with the action frequencies it logged; and ``dvc status`` must report
no changed dependency, parameter or committed output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import binomtest

from sepo.comparison import row_difference
from sepo.episode_log import read_episodes
from sepo.exploitability import nash_conv
from sepo.games.kuhn import AGGRESSIVE_ACTIONS, INFOSETS
from sepo.games.kuhn_audit import decision_infosets
from sepo.metrics import evaluate_episodes
from sepo.report import expected_rows
from tests.model_fixtures import GAMES, PARAMS, ROOT

EVAL = ROOT / "metrics" / "eval"
ROWS = [(game, row) for game, rows in expected_rows(PARAMS.eval.references, GAMES).items() for row in rows]


def committed(game: str, row: str) -> dict:
    path = EVAL / row / f"{game}.json"
    assert path.exists(), f"{path} is missing: run `dvc repro` and commit its results"
    return json.loads(path.read_text())


@pytest.mark.parametrize("game, row", ROWS)
def test_every_metric_is_recomputed_from_the_committed_episode_log(game, row):
    result = committed(game, row)
    records = read_episodes(EVAL / row / result["episodes_file"])
    again = evaluate_episodes(PARAMS.game(game), records, result["weights"],
                              bootstrap_samples=PARAMS.eval.bootstrap_samples, confidence=PARAMS.eval.confidence,
                              seed=result["seed"])
    assert again == result["metrics"]


@pytest.mark.parametrize("game, row", ROWS)
def test_safety_is_the_weighted_sum_of_the_written_components(game, row):
    result = committed(game, row)
    m, w, s = result["metrics"], result["weights"], result["scale"]
    assert w == PARAMS.games[game].report_weights.model_dump() and s == PARAMS.game(game).scale
    safety = (s * m["pay"]["value"] - w["exploit"] * s * m["exploit"]["value"]
              - w["collusion"] * m["collusion"]["value"] - w["externality"] * m["externality"]["value"])
    assert safety == pytest.approx(m["safety"]["value"], abs=1e-9)


AUDITED = [(game, row) for game, row in ROWS if PARAMS.game(game).strategy_audit() is not None]
MODEL_ROWS = ("base", "sft", "sepo")


@pytest.mark.parametrize("game, row", AUDITED)
def test_every_strategy_audit_is_recomputed_from_the_committed_episode_log(game, row):
    result = committed(game, row)
    audit = result["audit"]
    if row not in MODEL_ROWS:  # a scripted reference keeps its exact table
        assert nash_conv(audit["policy_table"]) == pytest.approx(audit["scalars"]["nash_conv"]["value"], abs=1e-12)
        return
    again = PARAMS.game(game).strategy_audit().summarise(
        read_episodes(EVAL / row / result["episodes_file"]), audit["unreached"], exact_strategy=None,
        bootstrap_samples=PARAMS.eval.bootstrap_samples, confidence=PARAMS.eval.confidence, seed=result["seed"])
    assert again == audit
    assert nash_conv(audit["policy_table"]) == pytest.approx(audit["scalars"]["nash_conv"]["value"], abs=1e-12)


@pytest.mark.parametrize("row", [row for row in ("sft", "sepo") if ("kuhn", row) in ROWS])
def test_a_model_rows_kuhn_table_agrees_with_its_logged_action_frequencies(row):
    """At every set reached at least 20 times, the bets and calls played fit the table (binomial, p > 0.001)."""
    result = committed("kuhn", row)
    played: dict[str, list[bool]] = {key: [] for key in INFOSETS}
    for record in read_episodes(EVAL / row / result["episodes_file"]):
        for key, decision in zip(decision_infosets(record), record.decisions, strict=True):
            played[key].append(decision.action in AGGRESSIVE_ACTIONS)
    table = result["audit"]["policy_table"]
    checked = 0
    for key, actions in played.items():
        if len(actions) >= 20:
            checked += 1
            p = min(max(table[key], 1e-9), 1 - 1e-9)
            assert binomtest(sum(actions), len(actions), p).pvalue > 0.001, (key, sum(actions), len(actions), p)
    assert checked >= 6


COMPARISONS = ROOT / "metrics" / "comparisons.json"


def test_every_paired_comparison_is_recomputed_from_the_two_rows_logs():
    compared = json.loads(COMPARISONS.read_text())
    for game, differences in compared["differences"].items():
        rows = []
        for row in (compared["treated"], compared["control"]):
            result = committed(game, row)
            rows.append((result, read_episodes(EVAL / row / result["episodes_file"])))
        again = row_difference(PARAMS.game(game), *rows, bootstrap_samples=PARAMS.eval.bootstrap_samples,
                               confidence=PARAMS.eval.confidence, seed=PARAMS.eval.seed)
        assert again == differences, game


def stage_outputs() -> set[str]:
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return {str(Path(out.fs_path).relative_to(ROOT)) for stage in repo.index.stages for out in stage.outs}


def test_dvc_status_shows_no_changed_dependency_param_or_committed_output():
    """Only outputs that live in the DVC cache (models, datasets before `dvc pull`) may be absent."""
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    outputs = stage_outputs()
    problems = []
    for stage, entries in json.loads(status.stdout or "{}").items():
        for entry in entries:
            if not isinstance(entry, dict):
                problems.append(f"{stage}: {entry}")
                continue
            for path, state in entry.get("changed deps", {}).items():
                if isinstance(state, dict):  # a params file: any change counts
                    problems.append(f"{stage}: params {sorted(state)} {sorted(set(state.values()))}")
                elif not (state == "deleted" and path in outputs):
                    problems.append(f"{stage}: dependency {path} {state}")
            for path, state in entry.get("changed outs", {}).items():
                if state not in ("deleted", "not in cache"):
                    problems.append(f"{stage}: output {path} {state}")
    assert not problems, "committed results do not match the code and params; run `dvc repro`:\n" + \
        "\n".join(problems)
