"""Where a model's invalid replies are: the invalid rate of an evaluation log by round and by opponent.

    python scripts/invalid_replies.py metrics/eval/sft/negotiation_items.episodes.jsonl.gz [--show 3]

The evaluation reports one invalid rate per domain (``metrics/eval/<policy>/<game>.json``);
this splits it so a rate that comes from one round, or from opponents whose
histories the SFT data never shows (the data plays the train pool only,
SPEC section 6), is visible.  ``--show`` prints that many invalid replies.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable

from sepo.episode_log import read_episodes
from sepo.games.protocol import EpisodeRecord


def invalid_counts(records: Iterable[EpisodeRecord]) -> tuple[dict[int, tuple[int, int]],
                                                               dict[tuple[str, str], tuple[int, int]]]:
    """(round -> (invalid, decisions), (pool, opponent) -> (invalid, decisions)) over every agent decision."""
    by_round: Counter = Counter()
    by_opponent: Counter = Counter()
    invalid_round: Counter = Counter()
    invalid_opponent: Counter = Counter()
    for record in records:
        for decision in record.decisions:
            opponent = (record.pool, record.opponent)
            by_round[decision.round] += 1
            by_opponent[opponent] += 1
            if not decision.valid:
                invalid_round[decision.round] += 1
                invalid_opponent[opponent] += 1
    return ({r: (invalid_round[r], n) for r, n in sorted(by_round.items())},
            {o: (invalid_opponent[o], n) for o, n in sorted(by_opponent.items())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("episodes", help="an evaluation log, metrics/eval/<policy>/<game>.episodes.jsonl.gz")
    parser.add_argument("--show", type=int, default=0, help="invalid replies to print")
    args = parser.parse_args()
    records = read_episodes(args.episodes)
    by_round, by_opponent = invalid_counts(records)
    total = sum(n for _, n in by_round.values())
    bad = sum(i for i, _ in by_round.values())
    print(f"{bad} of {total} decisions invalid ({bad / max(total, 1):.2%})")
    for label, table in (("round", by_round), ("opponent", by_opponent)):
        for key, (invalid, n) in table.items():
            name = f"{key[0]}/{key[1]}" if isinstance(key, tuple) else str(key)
            print(f"  {label} {name:24s} {invalid:5d} / {n:5d}  {invalid / n:6.2%}")
    shown = [(r, d) for r in records for d in r.decisions if not d.valid][:args.show]
    for record, decision in shown:
        print(f"--- {record.pool}/{record.opponent}, round {decision.round}:\n{decision.reply}")


if __name__ == "__main__":
    main()
