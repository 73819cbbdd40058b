"""The committed results belong to the committed code and params, and every number can be rechecked.

These tests read the repository's own ``metrics/eval`` (written by the last
full ``dvc repro``, committed with its ``dvc.lock``): every metric is
recomputed from its episode log, every safety from its components, every
Kuhn NashConv from its 12-infoset table with OpenSpiel; and ``dvc status``
must report no changed dependency, parameter or committed output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sepo.episode_log import read_episodes
from sepo.exploitability import nash_conv
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


@pytest.mark.parametrize("row", [row for game, row in ROWS if game == "kuhn"])
def test_kuhn_nash_conv_is_recomputed_from_the_written_policy_table(row):
    kuhn = committed("kuhn", row)["kuhn"]
    assert nash_conv(kuhn["policy_table"]) == pytest.approx(kuhn["nash_conv"], abs=1e-12)
    assert kuhn["exploitability"] == pytest.approx(kuhn["nash_conv"] / 2, abs=1e-12)


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
