"""Hostile params: every invalid value is one line naming the key and what is allowed, exit 2, no traceback.

Each case changes one key of the committed ``params.yaml`` and runs it
through ``sepo plan`` and through the ``generate`` stage's entry point (the
first stage of ``dvc repro``), both in-process; a few also as real
processes, so that nothing prints a traceback at the process level either.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sepo.cli import main as sepo_main
from tests.repo_files import load_repo_file

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
DELETE = object()


def _stage(name: str):
    return load_repo_file(f"stages/{name}.py", f"stage_{name}")


GENERATE = _stage("generate")


def mutated(path: str, value: Any) -> dict[str, Any]:
    """The committed params with the dotted ``path`` set to ``value`` (or deleted)."""
    params = copy.deepcopy(PARAMS)
    *parents, last = path.split(".")
    node = params
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return params


IPD_PAYOFFS_WITHOUT_CD = {"CC": [3, 3], "DC": [5, 0], "DD": [1, 1]}

#: (dotted key, bad value, text the error must contain: the key and the allowed values or rule)
CASES: list[tuple[str, Any, tuple[str, ...]]] = [
    # domain settings and strategy knobs
    ("games.ipd.strategies.GenerousTFT", {"forgiv": 0.25},
     ("games.ipd.strategies.GenerousTFT.forgiv", "valid: forgive")),
    ("games.ipd.strategies.GenerousTFT", {"forgive": 1.5},
     ("games.ipd.strategies.GenerousTFT.forgive", "less than or equal to 1")),
    ("games.ipd.strategies.Mixed", {"cooperate": -0.1},
     ("games.ipd.strategies.Mixed.cooperate", "greater than or equal to 0")),
    ("games.ipd.strategies.Grim", {"patience": 2}, ("games.ipd.strategies.Grim.patience", "valid: none")),
    ("games.ipd.strategies.Mixed", "often", ("games.ipd.strategies.Mixed", "dictionary")),
    ("games.ipd.settings.payoffs", IPD_PAYOFFS_WITHOUT_CD, ("games.ipd.settings.payoffs.CD", "Field required")),
    ("games.ipd.settings.payoffs", {**IPD_PAYOFFS_WITHOUT_CD, "CD": [0, 5], "XX": [1, 1]},
     ("games.ipd.settings.payoffs.XX", "valid: CC, CD, DC, DD")),
    ("games.ipd.settings.payoffs", {"CC": [0, 0], "CD": [0, 5], "DC": [5, 0], "DD": [1, 1]},
     ("games.ipd.settings.payoffs", "CC's agent payoff must be > 0")),
    ("games.ipd.settings.payoffs", {"CC": [3], "CD": [0, 5], "DC": [5, 0], "DD": [1, 1]},
     ("games.ipd.settings.payoffs.CC.1", "Field required")),
    ("games.auction.settings.values", [], ("games.auction.settings.values", "at least 1")),
    ("games.auction.settings.values", [0, 4], ("games.auction.settings.values.0", "greater than 0")),
    ("games.auction.settings.bids", {"LOW": 3, "MEDIUM": 2, "HIGH": 1},
     ("games.auction.settings.bids", "LOW < MEDIUM < HIGH")),
    ("games.auction.settings.bids", {"LOW": 1, "MEDIUM": 2}, ("games.auction.settings.bids.HIGH", "Field required")),
    ("games.auction.strategies", {"Adaptive": {"opening": "HUGE"}},
     ("games.auction.strategies.Adaptive.opening", "'LOW', 'MEDIUM' or 'HIGH'")),
    ("games.auction.strategies", {"Shaded": {"share": -1}},
     ("games.auction.strategies.Shaded.share", "greater than or equal to 0")),
    ("games.negotiation.settings.min_demand", 9.5, ("games.negotiation.settings.min_demand", "integer")),
    ("games.negotiation.settings", {"pie": 10, "min_demand": 9, "max_demand": 1, "greedy_demand": 7},
     ("games.negotiation.settings", "min_demand <= max_demand <= pie")),
    ("games.negotiation.settings.greedy_demand", 12,
     ("games.negotiation.settings", "greedy_demand must lie in min_demand..max_demand (1..9)")),
    ("games.negotiation.strategies.Concede", {"start": 7, "step": 1, "floor": 8},
     ("games.negotiation.strategies.Concede", "floor must be <= start")),
    ("games.negotiation.strategies.RandomDemand", {"low": 7, "high": 3},
     ("games.negotiation.strategies.RandomDemand", "low <= high")),
    ("games.negotiation_items.settings.min_count", 0, ("games.negotiation_items.settings.min_count", "greater than 0")),
    ("games.negotiation_items.settings.items", ["books", "books"],
     ("games.negotiation_items.settings", "listed twice")),
    ("games.negotiation_items.settings.items", ["Books!"], ("games.negotiation_items.settings.items.0", "pattern")),
    ("games.negotiation_items.settings",
     {"items": ["books", "hats", "balls"], "min_count": 3, "max_count": 3, "total_value": 10},
     ("games.negotiation_items.settings", "can be worth 10")),
    ("games.kuhn.settings", {"cards": 4}, ("games.kuhn.settings.cards", "valid: none")),
    ("games.kuhn.strategies.NashApprox", {"alpha": 0.5},
     ("games.kuhn.strategies.NashApprox.alpha", "less than or equal to 0.333")),
    ("games.kuhn.strategies", {"PotControl": {"call_with_queen": 2}},
     ("games.kuhn.strategies.PotControl.call_with_queen", "less than or equal to 1")),
    ("games.ipd.rounds", -3, ("games.ipd.rounds", "greater than 0")),
    ("games.ipd.max_payoff", math.inf, ("games.ipd.max_payoff", "finite")),
    # pools and names
    ("games.ipd.pools.train", ["TitForTat", "TitForTat"], ("games.ipd.pools.train", "'TitForTat' is listed twice")),
    ("games.kuhn.pools.shift", ["AlwaysPass", "AlwaysPass"], ("games.kuhn.pools.shift", "listed twice")),
    ("eval.row_episodes", {"bas": 4}, ("eval.row_episodes.bas", "valid: base, equilibrium, reciprocal, sepo, sft")),
    ("eval.game_episodes", {"ipdd": 64}, ("eval.game_episodes.ipdd", "valid: ")),
    ("eval.game_episodes", {"ipd": 0}, ("eval.game_episodes.ipd", "greater than 0")),
    ("ablation.game_eval_episodes", {"ipdd": 64}, ("ablation.game_eval_episodes.ipdd", "valid: ")),
    ("ablation.game_eval_episodes", {"ipd": -1}, ("ablation.game_eval_episodes.ipd", "greater than 0")),
    ("profile", "nonexistent", ("profile", "valid: paper-gemma, paper-qwen, tiny")),
    ("penalty.mode", "bogus", ("penalty.mode", "'per_rollout', 'constant', 'auxiliary' or 'none'")),
    ("sft.datasets", ["multi", "multi"], ("sft.datasets", "listed twice")),
    ("ablation.games", ["ipd", "ipd"], ("ablation.games", "listed twice")),
    ("ablation.runs", [{"mode": "none", "scale_rewards": "batch"}] * 2, ("ablation.runs", "listed twice")),
    ("sft.lora.target_modules", ["q_proj", "q_proj"], ("sft.lora.target_modules", "listed twice")),
    ("orchestration.evaluation.0.games", ["ipd", "ipd"], ("orchestration.evaluation.0.games", "listed twice")),
    ("top_level_typo", 1, ("top_level_typo", "valid: profile, games, eval")),
    # trainer and sampling
    ("sft.lr_scheduler_type", "bogus", ("sft.lr_scheduler_type", "'cosine'")),
    ("sft.lr_scheduler_type", "cosine_with_min_lr", ("sft.lr_scheduler_type", "'linear'")),
    ("sft.max_steps", -5, ("sft.max_steps", "-1 for num_train_epochs")),
    ("sft.max_steps", 0, ("sft.max_steps", "-1 for num_train_epochs")),
    ("sft.learning_rate", -1e-3, ("sft.learning_rate", "greater than 0")),
    ("sft.warmup_ratio", math.nan, ("sft.warmup_ratio", "finite")),
    ("sft.lora.dropout", 1, ("sft.lora.dropout", "less than 1")),
    ("generation.temperature", math.inf, ("generation.temperature", "finite")),
    ("generation.temperature", 0, ("generation.temperature", "greater than 0")),
    ("generation.temperature", math.nan, ("generation.temperature", "finite")),
    ("generation.top_p", 1.5, ("generation.top_p", "less than or equal to 1")),
    ("validate.share_tolerance", 1.2, ("validate.share_tolerance", "less than 1")),
    ("sepo.max_steps", 0, ("sepo.max_steps", "greater than 0")),
    ("grpo.num_generations", 1, ("grpo.num_generations", "greater than 1")),
    ("grpo.learning_rate", "fast", ("grpo.learning_rate", "valid number")),
    ("eval.confidence", 1, ("eval.confidence", "less than 1")),
    ("data.zstd_level", 30, ("data.zstd_level", "less than or equal to 22")),
    # seeds
    ("data.seed", 2**70, ("data.seed", "less than 18446744073709551616")),
    ("generation.seed", -1, ("generation.seed", "greater than or equal to 0")),
    ("sft.seed", 2**40, ("sft.seed", "less than 4294967296")),
    ("sepo.seed", 2**33, ("sepo.seed", "less than 4294967296")),
    # orchestration
    ("orchestration.evaluation_cron", "every day",
     ("orchestration.evaluation_cron", "'minute hour day month weekday'")),
    ("orchestration.evaluation_cron", "61 * * * *", ("orchestration.evaluation_cron", "not a cron expression")),
    ("orchestration.dask_address", "not a url", ("orchestration.dask_address", "tcp, tls")),
    ("orchestration.dask_address", "tcp://", ("orchestration.dask_address", "protocol://host:port")),
    ("orchestration.dask_address", "tcp://host:port", ("orchestration.dask_address", "protocol://host:port")),
    ("model.tiny", DELETE, ("model.tiny", "Field required")),
]


def _assert_one_line(err: str, expected: tuple[str, ...]) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


@pytest.mark.parametrize(("key", "value", "expected"), CASES, ids=[f"{c[0]}={c[1]!r}"[:70] for c in CASES])
def test_a_bad_value_is_one_line_naming_the_key(key, value, expected, tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(mutated(key, value), sort_keys=False))
    assert sepo_main(["--params", str(bad), "plan"]) == 2
    _assert_one_line(capsys.readouterr().err, expected)
    out = tmp_path / "sft"
    assert GENERATE.main(["--params", str(bad), "--out", str(out)]) == 2
    _assert_one_line(capsys.readouterr().err, expected)
    assert not out.exists()


def test_the_suite_is_large_enough():
    assert len(CASES) >= 40


BAD_YAML = {
    "malformed": ("games: [unclosed\n", "not valid YAML"),
    "python_tag": ("profile: !!python/object/apply:os.system ['echo owned']\n", "not valid YAML"),
    "repeated_key": ("profile: tiny\nprofile: paper-qwen\n", "key 'profile' appears twice"),
    "empty": ("", "expected a mapping"),
    "a_list": ("- profile\n", "expected a mapping"),
    "not_utf8": (b"\xff\xfe\x00garbage", "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_bad_yaml_is_one_line_in_every_command(case, tmp_path, capsys):
    text, expected = BAD_YAML[case]
    bad = tmp_path / "params.yaml"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    commands = (["plan"], ["plan", "--profile", "paper-qwen"], ["profile", "paper-qwen"],
                ["profile", "paper-qwen", "--apply"],
                ["evaluate", "--policy", "scripted:TitForTat", "--game", "ipd"],
                ["play", "--game", "ipd", "--policy", "scripted:TitForTat", "--opponent", "Grim"])
    before = bad.read_bytes()
    for command in commands:
        assert sepo_main(["--params", str(bad), *command]) == 2, command
        _assert_one_line(capsys.readouterr().err, (str(bad), expected))
    assert bad.read_bytes() == before  # --apply never wrote
    assert GENERATE.main(["--params", str(bad), "--out", str(tmp_path / "sft")]) == 2
    _assert_one_line(capsys.readouterr().err, (expected,))


def test_a_python_tag_is_never_constructed(tmp_path, capsys):
    marker = tmp_path / "owned"
    bad = tmp_path / "params.yaml"
    bad.write_text(f"profile: !!python/object/apply:os.system ['touch {marker}']\n")
    assert sepo_main(["--params", str(bad), "plan"]) == 2
    assert not marker.exists()


@pytest.mark.parametrize("command", [["-m", "sepo.cli", "--params", "{bad}", "plan"],
                                     ["stages/generate.py", "--params", "{bad}", "--out", "{out}"],
                                     ["stages/sft.py", "--params", "{bad}", "--out", "{out}"]])
def test_as_a_process_a_bad_value_exits_2_without_a_traceback(command, tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(mutated("sft.lr_scheduler_type", "bogus"), sort_keys=False))
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept").write_text("an earlier output")
    args = [a.format(bad=bad, out=out) for a in command]
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    _assert_one_line(done.stderr, ("sft.lr_scheduler_type", "'cosine'"))
    assert (out / "kept").read_text() == "an earlier output"
