"""Evaluated episodes as compressed JSON Lines: the audit trail behind every reported number.

One line per episode, in evaluation order::

    {"game", "pool", "opponent", "seed", "context",
     "rounds": [{"round", "moves": [[seat, action], ...], "payoffs": [agent, opponent],
                 "private": [agent's, opponent's], "public": {...},
                 "decisions": [{"legal_actions", "action", "reply", "valid"}, ...]}]}

``decisions`` are the agent's decisions inside that round (Kuhn may have
two), with its raw reply and whether it parsed (``valid``) or the fallback
chose, and, where a strategy audit asked for them (a model's Kuhn
decisions), ``probabilities``: the policy's probabilities of the legal
actions as it played them.  ``read_episodes`` rebuilds the ``EpisodeRecord``s the metrics
consume from these lines alone, so every metric can be recomputed without
replaying anything.

The file is gzip with a zero timestamp and no file name in its header, so
the same episodes give byte-identical files (DVC hashes stay stable).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sepo.games.protocol import Decision, EpisodeRecord, Move, RoundRecord
from sepo.io import write_bytes_atomic


def episode_to_json(record: EpisodeRecord) -> dict[str, Any]:
    """One episode as a JSON-able dict (see the module docstring)."""
    decisions: dict[int, list[dict[str, Any]]] = {}
    for d in record.decisions:
        entry = {"legal_actions": list(d.legal_actions), "action": d.action, "reply": d.reply, "valid": d.valid}
        if d.probabilities is not None:
            entry["probabilities"] = dict(d.probabilities)
        decisions.setdefault(d.round, []).append(entry)
    rounds = [{"round": r.round, "moves": [[m.seat, m.action] for m in r.moves], "payoffs": list(r.payoffs),
               "private": list(r.private), "public": dict(r.public), "decisions": decisions.get(r.round, [])}
              for r in record.rounds]
    return {"game": record.game, "pool": record.pool, "opponent": record.opponent, "seed": record.seed,
            "context": record.context, "rounds": rounds}


def episode_from_json(line: dict[str, Any]) -> EpisodeRecord:
    """The ``EpisodeRecord`` an ``episode_to_json`` dict came from."""
    rounds, decisions = [], []
    for r in line["rounds"]:
        rounds.append(RoundRecord(round=r["round"], moves=tuple(Move(seat, action) for seat, action in r["moves"]),
                                  payoffs=tuple(r["payoffs"]), private=tuple(r["private"]), public=r["public"]))
        decisions.extend(Decision(round=r["round"], legal_actions=tuple(d["legal_actions"]), action=d["action"],
                                  reply=d["reply"], valid=d["valid"], probabilities=d.get("probabilities"))
                         for d in r["decisions"])
    return EpisodeRecord(game=line["game"], pool=line["pool"], opponent=line["opponent"], seed=line["seed"],
                         rounds=rounds, decisions=decisions, context=line["context"])


def write_episodes(path: str | Path, records: Iterable[EpisodeRecord]) -> None:
    """Write ``records`` as gzip JSON Lines, atomically and reproducibly."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write(json.dumps(episode_to_json(record), sort_keys=True, separators=(",", ":")).encode())
            gz.write(b"\n")
    write_bytes_atomic(path, buffer.getvalue())


def iter_episode_lines(path: str | Path) -> Iterator[dict[str, Any]]:
    """The raw JSON dict of each episode of a log."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_episodes(path: str | Path) -> list[EpisodeRecord]:
    """Every episode of a log written by ``write_episodes``."""
    return [episode_from_json(line) for line in iter_episode_lines(path)]
