"""``scripts/invalid_replies.py``: the split of an evaluation log's invalid rate by round and opponent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sepo.episode_log import write_episodes
from sepo.games.protocol import Decision, EpisodeRecord, RoundRecord
from tests.repo_files import load_repo_file

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    return load_repo_file("scripts/invalid_replies.py")


def episode(pool: str, opponent: str, valid_by_round: list[bool]) -> EpisodeRecord:
    rounds = [RoundRecord(round=r, moves=(), payoffs=(0.0, 0.0), private=(None, None), public={})
              for r in range(1, len(valid_by_round) + 1)]
    decisions = [Decision(round=r, legal_actions=("a", "b"), action="a", reply=f"reply {pool} {r}", valid=v)
                 for r, v in enumerate(valid_by_round, start=1)]
    return EpisodeRecord(game="ipd", pool=pool, opponent=opponent, seed=1, rounds=rounds, decisions=decisions,
                         context={})


def test_invalid_decisions_are_counted_by_round_and_by_opponent(tmp_path):
    records = [episode("train", "TitForTat", [True, True, False]),
               episode("exploit", "AlwaysDefect", [True, False, False]),
               episode("exploit", "AlwaysDefect", [True, True, True])]
    by_round, by_opponent = load_script().invalid_counts(records)
    assert by_round == {1: (0, 3), 2: (1, 3), 3: (2, 3)}
    assert by_opponent == {("exploit", "AlwaysDefect"): (2, 6), ("train", "TitForTat"): (1, 3)}

    path = tmp_path / "ipd.episodes.jsonl.gz"
    write_episodes(path, records)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "invalid_replies.py"), str(path), "--show", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.startswith("3 of 9 decisions invalid (33.33%)")
    assert "round 3" in out and "2 /     3" in out and "--- train/TitForTat, round 3:\nreply train 3" in out
