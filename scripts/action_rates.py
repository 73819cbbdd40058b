"""What a policy plays, per opponent and private information: action shares of one or more evaluation logs.

    python scripts/action_rates.py metrics/eval/sft/auction.episodes.jsonl.gz \\
        metrics/eval/sepo/auction.episodes.jsonl.gz [--action LOW] [--ignore-private]

The metrics say that a penalty moved (auction collusion, SEPO − SFT); this
says which decisions moved it: the share of each action among the agent's
decisions, split by (pool, opponent) and by the agent's private information in
that round (the auction's value, Kuhn's card), one column per log.  Logs of
rows evaluated on the same seeds (SPEC section 4) face the same opponents and
private draws, so their columns compare like with like.  ``--action`` prints
one action's share only; ``--ignore-private`` merges the private draws (a
domain whose private information is a whole valuation, negotiation_items, has
too many to read).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from sepo.episode_log import read_episodes
from sepo.games.protocol import AGENT, EpisodeRecord

Key = tuple[str, str, str]


def action_counts(records: Iterable[EpisodeRecord], *, by_private: bool = True) -> dict[Key, Counter]:
    """(pool, opponent, private) -> Counter of the agent's actions, over every decision of ``records``.

    ``private`` is the agent's private information of the decision's round as
    text (a card as it is, anything else as compact JSON; "" under
    ``by_private=False`` or when the domain has none).
    """
    counts: dict[Key, Counter] = {}
    for record in records:
        private_by_round = {r.round: r.private[AGENT] for r in record.rounds}
        for decision in record.decisions:
            private = private_by_round.get(decision.round) if by_private else None
            label = ("" if private is None else private if isinstance(private, str)
                     else json.dumps(private, sort_keys=True, separators=(",", ":")))
            counts.setdefault((record.pool, record.opponent, label), Counter())[decision.action] += 1
    return dict(sorted(counts.items()))


def shares(counts: Counter) -> dict[str, float]:
    """Each action's share of the decisions counted (sorted by action)."""
    total = sum(counts.values())
    return {action: n / total for action, n in sorted(counts.items())}


def table(logs: dict[str, dict[Key, Counter]], action: str | None = None) -> list[str]:
    """Text lines: one per (pool, opponent, private) and action, one share column (and decision count) per log."""
    keys = sorted(set().union(*(counts.keys() for counts in logs.values())))
    names = list(logs)
    lines = [f"{'pool/opponent':28s} {'private':10s} {'action':8s} " + " ".join(f"{n[-24:]:>24s}" for n in names)]
    for key in keys:
        actions = sorted(set().union(*(logs[n].get(key, Counter()).keys() for n in names)))
        for act in [action] if action else actions:
            cells = []
            for name in names:
                counts = logs[name].get(key)
                cells.append(f"{'-':>24s}" if not counts else
                             f"{shares(counts).get(act, 0.0):>16.3f} (n={sum(counts.values()):4d})")
            lines.append(f"{key[0] + '/' + key[1]:28s} {key[2][:10]:10s} {act:8s} " + " ".join(cells))
    return lines


def column_names(paths: list[str]) -> list[str]:
    """A short name per log: its policy folder (``metrics/eval/<policy>/``) where those differ, else the path."""
    policies = [Path(path).parent.name for path in paths]
    return policies if len(set(policies)) == len(paths) else paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("episodes", nargs="+", help="evaluation logs, metrics/eval/<policy>/<game>.episodes.jsonl.gz")
    parser.add_argument("--action", help="print this action's share only")
    parser.add_argument("--ignore-private", action="store_true", help="merge the agent's private draws")
    args = parser.parse_args()
    logs = {name: action_counts(read_episodes(path), by_private=not args.ignore_private)
            for name, path in zip(column_names(args.episodes), args.episodes, strict=True)}
    print("\n".join(table(logs, args.action)))


if __name__ == "__main__":
    main()
