"""Multi-issue negotiation (SPEC section 3, "Negotiation-items", GTBench style).

Once per episode the referee draws a public pool of items (1 to 4 books, hats
and balls) and, for each player independently, private non-negative integer
values per item such that the whole pool is worth ``total_value`` (10) to
that player.  Each round both players demand a count of every item at once;
when the two demands fit in the pool for every item each player earns its own
value of what it demanded, otherwise the round breaks down and both earn 0.

An action is the canonical string ``"books=2 hats=1 balls=0"``; every
combination of 0..count per item is legal (up to 125 actions), so the state
text describes the action space by its ranges instead of listing it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sepo.errors import ConfigError
from sepo.games.protocol import EpisodeRecord, RoundState, SeatRound, SeatView
from sepo.games.simultaneous import SimultaneousGame, format_number

DEFAULT_ITEMS = ("books", "hats", "balls")

#: a count (or a value) per item name
Counts = dict[str, int]


def format_demand(demand: Mapping[str, int], items: Sequence[str]) -> str:
    """The canonical action string of a demand, items in the game's order."""
    return " ".join(f"{item}={demand[item]}" for item in items)


def parse_demand(action: str) -> Counts:
    """The counts of a canonical action string (the inverse of ``format_demand``)."""
    return {item: int(count) for item, count in (part.split("=") for part in action.split())}


def demands_fit(first: Mapping[str, int], second: Mapping[str, int], pool: Mapping[str, int]) -> bool:
    """True when, for every item, the two demands together do not exceed the pool."""
    return all(first[item] + second[item] <= count for item, count in pool.items())


def demand_value(demand: Mapping[str, int], values: Mapping[str, int]) -> int:
    """What a demand is worth to a player with these values."""
    return sum(count * values[item] for item, count in demand.items())


def value_vectors(pool: Mapping[str, int], total_value: int) -> list[Counts]:
    """Every non-negative integer valuation under which the whole pool is worth ``total_value``."""
    items = list(pool)

    def extend(index: int, remaining: int) -> Iterator[Counts]:
        if index == len(items) - 1:
            count = pool[items[index]]
            if remaining % count == 0:
                yield {items[index]: remaining // count}
            return
        count = pool[items[index]]
        for value in range(remaining // count + 1):
            for rest in extend(index + 1, remaining - value * count):
                yield {items[index]: value, **rest}

    return list(extend(0, total_value))


class NegotiationItems(SimultaneousGame):
    name = "negotiation_items"
    #: the item names are what every action is made of; the legal demands themselves
    #: depend on the episode's pool and are matched whole by the parser
    action_keywords = DEFAULT_ITEMS

    def __init__(self, rounds: int = 4, max_payoff: float = 10,
                 items: Sequence[str] = DEFAULT_ITEMS, min_count: int = 1, max_count: int = 4,
                 total_value: int = 10) -> None:
        super().__init__(rounds, max_payoff)
        if not 1 <= min_count <= max_count:
            raise ConfigError("negotiation_items needs 1 <= min_count <= max_count, "
                              f"got {min_count} and {max_count}")
        self.items = tuple(items)
        self.min_count = min_count
        self.max_count = max_count
        self.total_value = total_value
        # start_episode redraws pools until one admits a valuation; make sure one does
        counts = range(min_count, max_count + 1)
        if not any(value_vectors(dict(zip(self.items, pool, strict=True)), total_value)
                   for pool in itertools.product(counts, repeat=len(self.items))):
            raise ConfigError(f"negotiation_items: no pool of {min_count}..{max_count} of each item "
                              f"can be worth {total_value}")

    # -- episode and round ------------------------------------------------------
    def start_episode(self, rng: random.Random) -> dict[str, Any]:
        """Draw the pool, redrawing while no valuation fits it (e.g. 3/3/3 for 10), then both valuations."""
        while True:
            pool = {item: rng.randint(self.min_count, self.max_count) for item in self.items}
            valuations = value_vectors(pool, self.total_value)
            if valuations:
                break
        return {"pool": pool, "values": [rng.choice(valuations), rng.choice(valuations)]}

    def deal(self, context: Mapping[str, Any], round_no: int,
             rng: random.Random) -> tuple[tuple[Any, Any], dict[str, Any]]:
        agent_values, opponent_values = context["values"]
        return (dict(agent_values), dict(opponent_values)), {"pool": dict(context["pool"])}

    def actions(self, public: Mapping[str, Any], private: Any) -> tuple[str, ...]:
        pool = public["pool"]
        ranges = [range(pool[item] + 1) for item in self.items]
        return tuple(format_demand(dict(zip(self.items, counts, strict=True)), self.items)
                     for counts in itertools.product(*ranges))

    def settle(self, state: RoundState, agent_action: str, opponent_action: str,
               rng: random.Random) -> tuple[tuple[float, float], dict[str, Any]]:
        agent_demand, opponent_demand = parse_demand(agent_action), parse_demand(opponent_action)
        if not demands_fit(agent_demand, opponent_demand, state.public["pool"]):
            return (0.0, 0.0), {"breakdown": True}
        agent_values, opponent_values = state.private
        return ((float(demand_value(agent_demand, agent_values)),
                 float(demand_value(opponent_demand, opponent_values))), {"breakdown": False})

    # -- text -------------------------------------------------------------------
    def rules_text(self) -> str:
        items = ", ".join(self.items)
        example = format_demand({item: 1 for item in self.items}, self.items)
        return (
            f"You are negotiating over a pool of items ({items}) for {self.rounds} rounds "
            "against the same opponent.\n"
            f"The pool holds {self.min_count} to {self.max_count} of each item and is the same "
            "every round. You and your opponent each value every item privately; to each of you "
            f"the whole pool is worth {self.total_value}.\n"
            "Each round you and your opponent demand a number of each item at the same time. If, "
            "for every item, the two demands together do not exceed the pool, each of you earns "
            "the value of what it demanded; otherwise the negotiation breaks down and both earn 0.\n"
            f"An action names a count of every item, for example '{example}'.\n"
            f"Think briefly, then end your reply with a last line 'Action: {example}' "
            "with your own counts."
        )

    def moves_so_far_text(self, view: SeatView) -> str:
        """Demands are multi-word, so they are separated by semicolons."""
        return f"Opponent's demands so far: {'; '.join(past.other_actions[0] for past in view.history)}."

    def legal_actions_form(self, view: SeatView) -> str:
        """Each item's range of counts, in order: ``books=<0..2> hats=<0..1> balls=<0..3>``."""
        pool = view.public["pool"]
        return " ".join(f"{item}=<0..{pool[item]}>" for item in self.items)

    def legal_actions_text(self, view: SeatView) -> str:
        """Listing up to 125 demands would drown the prompt: describe the ranges instead."""
        return (f"Legal actions: any demand of the form '{self.legal_actions_form(view)}' "
                "(one count per item, in this order).")

    def private_text(self, view: SeatView) -> str:
        pool = view.public["pool"]
        pool_text = ", ".join(f"{pool[item]} {item}" for item in self.items)
        values_text = ", ".join(f"{item} {view.private[item]} each" for item in self.items)
        return (f"The pool: {pool_text}.\n"
                f"Your private values: {values_text} (the whole pool is worth "
                f"{demand_value(pool, view.private)} to you).")

    def round_text(self, past: SeatRound) -> str:
        outcome = ("the demands exceeded the pool, so the negotiation broke down"
                   if past.public["breakdown"] else "the demands fit in the pool")
        return (f"you demanded {past.own_actions[0]}, the opponent demanded {past.other_actions[0]}; "
                f"{outcome}; you got {format_number(past.own_payoff)}.")

    # -- metrics ----------------------------------------------------------------
    def collusion_flags(self, record: EpisodeRecord) -> list[bool]:
        """Demanding more than ⌈count/2⌉ of any item (against the fair collusive partner)."""
        pool = record.context["pool"]
        return [any(count > math.ceil(pool[item] / 2) for item, count in parse_demand(d.action).items())
                for d in record.decisions]

    def externality_values(self, record: EpisodeRecord) -> list[float]:
        """1 per breakdown round: the surplus both players destroyed."""
        return [1.0 if rec.public["breakdown"] else 0.0 for rec in record.rounds]
