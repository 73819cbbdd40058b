"""The GRPO dataset: one row per group, the group's settings carried in its prompt.

TRL hands the ``rollout_func`` nothing but the prompts (each repeated G times
by its ``RepeatSampler``), so a row's prompt *is* its group's key: the domain,
the opponent's pool and name, and the environment seed that the group's G
episodes share (common random numbers, SPEC section 5).  The key is a short
readable string (``ipd/exploit/AlwaysDefect/8150...``) that the rollout
decodes; the chat the model sees is built by the engine, not taken from it.

Pools: SEPO trains against the train, exploit and collusive pools; the
shift pool is held out for evaluation.  How often each opponent's groups are
drawn is ``sepo.group_weighting``, and it decides what the training reward
optimises in expectation:

- ``opponent`` (the default, the paper's "G rollouts per opponent"): every
  opponent gets ``seeds_per_opponent`` rows.  A pool's weight is then its
  share of the opponents: with n_t, n_e, n_c opponents the expected reward
  is proportional to s·u − (n_e/n_t)·λe·s·e − (n_c/n_t)·λc·c − …, so in Kuhn
  (3/2/1 opponents) collusion counts a third and exploit two thirds of what
  safety J gives them, and in IPD (4/2/1) a quarter and a half.
- ``pool``: every pool gets the same number of rows (``seeds_per_opponent``
  times the largest pool's size), split evenly among its opponents, so the
  expected reward is proportional to s·u − λe·s·e − λc·c − λx·(x̄_train +
  x̄_exploit): J's weights on payoff, exploit and collusion (externality,
  measured on two pools, counts about twice).  ``penalty.mode=auxiliary`` (the flawed design of
SPEC section 5) trains on train-pool groups only and measures its penalty on
auxiliary episodes whose seeds depend on the step and the rollout's place in
the batch, never on the credited episode.

Seeds are hashes of their purpose, so training, auxiliary and evaluation
episodes never share an environment seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sepo.config import Params
from sepo.games.protocol import POOLS, QUANTITY_POOLS
from sepo.reward import COMPONENTS

#: every pool a reward component is measured on (train, exploit, collusive; shift is held out)
TRAINING_POOLS = tuple(p for p in POOLS if any(p in QUANTITY_POOLS[c] for c in COMPONENTS))
#: the pools of the exploit and collusion penalties, measured apart under penalty.mode=auxiliary
AUXILIARY_POOLS = tuple(p for p in POOLS if p in QUANTITY_POOLS["exploit"] + QUANTITY_POOLS["collusion"])


def training_pools(mode: str) -> tuple[str, ...]:
    """Pools whose opponents form GRPO groups under penalty ``mode``."""
    return ("train",) if mode == "auxiliary" else TRAINING_POOLS


def derived_seed(*parts: object) -> int:
    """A stable 63-bit seed for the purpose named by ``parts``."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class GroupKey:
    """Which episodes a GRPO group plays: domain, pool, opponent and environment seed."""

    game: str
    pool: str
    opponent: str
    seed: int

    @property
    def prompt(self) -> str:
        return f"{self.game}/{self.pool}/{self.opponent}/{self.seed}"

    @classmethod
    def from_prompt(cls, prompt: str) -> GroupKey:
        parts = prompt.split("/")
        if len(parts) != 4 or not parts[3].isdigit():
            raise ValueError(f"not a SEPO group key: {prompt!r} (expected game/pool/opponent/seed)")
        return cls(parts[0], parts[1], parts[2], int(parts[3]))


def rows_per_opponent(params: Params, game: str, mode: str) -> dict[str, int]:
    """Rows of each training pool's opponents in the group dataset, by ``sepo.group_weighting`` (module doc)."""
    pools = {pool: params.games[game].pools.of(pool) for pool in training_pools(mode)}
    per_opponent = params.sepo.seeds_per_opponent
    if params.sepo.group_weighting == "opponent":
        return {pool: per_opponent for pool in pools}
    per_pool = per_opponent * max(len(opponents) for opponents in pools.values())
    return {pool: math.ceil(per_pool / len(opponents)) for pool, opponents in pools.items() if opponents}


def relative_weights(params: Params, game: str, mode: str) -> dict[str, float]:
    """What the expected training reward gives each penalty, as a multiple of the weight safety J gives it.

    A pool's share of the group dataset scales its terms; relative to the
    payoff (train pool) the exploit term then weighs (share_exploit /
    share_train) of λe and the collusion term (share_collusive /
    share_train) of λc.  1.0 for both is J's own balance (``pool``
    weighting); ``opponent`` weighting gives n_e/n_t and n_c/n_t.
    Externality is left out: it is measured on two pools, so no one share is
    its weight.  Empty under ``auxiliary`` (its penalties come from other
    episodes).  ``sepo plan`` prints it.
    """
    rows = {pool: count * len(params.games[game].pools.of(pool))
            for pool, count in rows_per_opponent(params, game, mode).items()}

    def pool_rows(quantity: str) -> int:
        return sum(rows.get(pool, 0) for pool in QUANTITY_POOLS[quantity])

    payoff = pool_rows("payoff")
    if not payoff or not all(pool_rows(penalty) for penalty in ("exploit", "collusion")):
        return {}
    return {penalty: pool_rows(penalty) / payoff for penalty in ("exploit", "collusion")}


def group_keys(params: Params, game: str, mode: str, seed: int) -> list[GroupKey]:
    """Every group of a run's dataset: ``rows_per_opponent`` rows for each opponent of each training pool.

    An opponent's first rows have the same seeds under either weighting.
    """
    keys = []
    rows = rows_per_opponent(params, game, mode)
    for pool in training_pools(mode):
        for opponent in params.games[game].pools.of(pool):
            for index in range(rows[pool]):
                group_seed = derived_seed("sepo", seed, game, pool, opponent, index)
                keys.append(GroupKey(game, pool, opponent, group_seed))
    return keys


def auxiliary_keys(params: Params, game: str, seed: int, step: int, index: int) -> list[GroupKey]:
    """The auxiliary episodes credited to rollout ``index`` of ``step``: one per auxiliary pool.

    Their seeds (and hence opponents) are functions of (seed, step, index)
    only: two batches whose credited episodes differ get the same auxiliary
    episodes, which is why this penalty carries no signal about the credited
    rollout's actions.
    """
    keys = []
    for pool in AUXILIARY_POOLS:
        aux_seed = derived_seed("sepo-auxiliary", seed, game, step, index, pool)
        opponents = params.games[game].pools.of(pool)
        keys.append(GroupKey(game, pool, opponents[aux_seed % len(opponents)], aux_seed))
    return keys
