"""``scripts/action_rates.py``: an evaluation log's action shares by opponent and private information."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sepo.episode_log import write_episodes
from sepo.games.protocol import Decision, EpisodeRecord, RoundRecord
from tests.repo_files import load_repo_file

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    return load_repo_file("scripts/action_rates.py")


def episode(pool: str, opponent: str, plays: list[tuple[int, str]]) -> EpisodeRecord:
    """An auction-like episode: per round, (the agent's private value, its bid)."""
    rounds = [RoundRecord(round=r, moves=(), payoffs=(0.0, 0.0), private=(value, 99), public={})
              for r, (value, _) in enumerate(plays, start=1)]
    decisions = [Decision(round=r, legal_actions=("LOW", "MEDIUM", "HIGH"), action=bid, reply=f"Action: {bid}",
                          valid=True) for r, (_, bid) in enumerate(plays, start=1)]
    return EpisodeRecord(game="auction", pool=pool, opponent=opponent, seed=1, rounds=rounds,
                         decisions=decisions, context={})


RECORDS = [episode("collusive", "CollusiveLow", [(2, "LOW"), (4, "MEDIUM"), (2, "LOW")]),
           episode("collusive", "CollusiveLow", [(2, "MEDIUM"), (4, "MEDIUM")]),
           episode("train", "Truthful", [(4, "HIGH")])]


def test_actions_are_counted_per_opponent_and_per_the_agents_private_value():
    script = load_script()
    counts = script.action_counts(RECORDS)
    assert counts == {("collusive", "CollusiveLow", "2"): {"LOW": 2, "MEDIUM": 1},
                      ("collusive", "CollusiveLow", "4"): {"MEDIUM": 2},
                      ("train", "Truthful", "4"): {"HIGH": 1}}
    # the opponent's private value (99) never enters; merging the draws pools the rounds
    merged = script.action_counts(RECORDS, by_private=False)
    assert merged[("collusive", "CollusiveLow", "")] == {"LOW": 2, "MEDIUM": 3}
    assert script.shares(merged[("collusive", "CollusiveLow", "")]) == {"LOW": 0.4, "MEDIUM": 0.6}


def test_two_logs_print_side_by_side_named_by_their_policy(tmp_path):
    sft, sepo = tmp_path / "sft" / "auction.episodes.jsonl.gz", tmp_path / "sepo" / "auction.episodes.jsonl.gz"
    for path in (sft, sepo):
        path.parent.mkdir()
    write_episodes(sft, RECORDS)
    write_episodes(sepo, [episode("collusive", "CollusiveLow", [(2, "LOW"), (4, "LOW")])])
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "action_rates.py"), str(sft), str(sepo),
                          "--action", "LOW"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split()[-2:] == ["sft", "sepo"]
    low_at_2 = next(line for line in out if line.startswith("collusive/CollusiveLow") and " 2 " in line)
    assert "0.667 (n=   3)" in low_at_2 and "1.000 (n=   1)" in low_at_2
    truthful = next(line for line in out if line.startswith("train/Truthful"))
    assert "0.000 (n=   1)" in truthful and truthful.rstrip().endswith("-")  # no such episodes in the second log
