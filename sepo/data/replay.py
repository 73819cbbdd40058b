"""Replay each SFT example's episode through the engine (issue 17: legal actions checked against the game state).

A row's ``legal_actions`` and ``action`` are what the demonstrator was shown
and chose, but a check that ``action in legal_actions`` trusts both columns.
The replay trusts neither: every episode is played again by the engine
against its recorded opponent with its recorded seed, the agent answering
each decision with the recorded reply, and a row passes only when the
engine, at that decision, shows exactly the row's prompt (the whole chat:
rules, states, earlier replies) and legal actions, and accepts its action.
A row whose earlier rows diverged fails too: from there on the engine's
state is not the row's.

Rows of one episode are its decisions 0..n-1 in order (``id`` ends in the
decision index); a split may end with an episode cut short, whose remaining
decisions the replay plays with any legal action and does not check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sepo.config import Params
from sepo.rollout import AgentReply, DecisionRequest, EpisodeSpec, play_episodes

#: the pool every demonstration episode was played against (``sepo.data.sft``)
REPLAY_POOL = "train"


def _decision_index(row_id: str) -> int | None:
    tail = str(row_id).rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


class _RecordedReplies:
    """Answers each decision of episode ``e`` with its recorded reply and records whether the engine agreed."""

    def __init__(self, rows_by_episode: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        self.rows = rows_by_episode
        self.agrees: list[list[bool]] = [[False] * len(rows) for rows in rows_by_episode]
        self.seen = [0] * len(rows_by_episode)
        self.diverged = [False] * len(rows_by_episode)

    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        replies = []
        for request in requests:
            e = request.episode_index
            k, self.seen[e] = self.seen[e], self.seen[e] + 1
            legal = tuple(request.view.legal_actions)
            if k >= len(self.rows[e]) or self.diverged[e]:  # past the recorded rows: play on, check nothing
                replies.append(AgentReply(text=f"Action: {legal[0]}", action=legal[0]))
                continue
            row = self.rows[e][k]
            try:
                ok = (_decision_index(row["id"]) == k and list(request.messages) == list(row["prompt"])
                      and legal == tuple(row["legal_actions"]) and row["action"] in legal
                      and isinstance(row["completion"][0]["content"], str))
            except (TypeError, KeyError, IndexError):  # a damaged row: its own null/type checks name it
                ok = False
            self.agrees[e][k] = ok
            self.diverged[e] = not ok
            if ok:
                replies.append(AgentReply(text=row["completion"][0]["content"], action=row["action"]))
            else:
                replies.append(AgentReply(text=f"Action: {legal[0]}", action=legal[0]))
        return replies


def replay_agreement(params: Params, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Per row (in the given order): whether the engine's replay of its episode shows and accepts it."""
    episodes: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        episodes.setdefault(str(row["episode_id"]), []).append(i)
    order = [sorted(members, key=lambda i: _decision_index(rows[i]["id"]) or 0) for members in episodes.values()]
    result = [False] * len(rows)
    specs, replayable = [], []
    for members in order:
        first = rows[members[0]]
        try:
            spec = EpisodeSpec(params.game(first["game"]), params.strategy(first["game"], first["opponent"]),
                               REPLAY_POOL, int(first["episode_seed"]))
        except (KeyError, ValueError, TypeError):  # an unknown game or opponent: its own checks report it
            continue
        specs.append(spec)
        replayable.append(members)
    agent = _RecordedReplies([[rows[i] for i in members] for members in replayable])
    if specs:
        play_episodes(specs, agent)
    for members, agrees in zip(replayable, agent.agrees, strict=True):
        for i, ok in zip(members, agrees, strict=True):
            result[i] = ok
    return result
