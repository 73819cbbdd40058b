"""The stratified episode bootstrap shared by every interval of the project (SPEC section 4).

Episodes are ordered by (pool, opponent, seed), so each (pool, opponent)
slot is one contiguous stratum and two rows evaluated on the same seeds
(common random numbers) line up episode for episode.  A bootstrap sample
resamples episodes with replacement within each stratum, keeping its size;
it is a vector of indices into that order, so the same indices resample
two aligned rows together: that is the paired bootstrap of a difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sepo.games.protocol import POOLS, EpisodeRecord


def episode_key(episode: EpisodeRecord) -> tuple[int, str, int]:
    """Where an episode sorts: pool (in ``POOLS`` order), opponent, seed."""
    if episode.pool not in POOLS:
        raise ValueError(f"episode has unknown pool {episode.pool!r}; valid: {', '.join(POOLS)}")
    return POOLS.index(episode.pool), episode.opponent, episode.seed


@dataclass(frozen=True)
class Strata:
    """An ordering of episodes into contiguous (pool, opponent) strata.

    ``order[k]`` is the index (in the caller's sequence) of the k-th episode;
    stratum ``j`` holds ``order[starts[j]:starts[j] + sizes[j]]``.
    """

    order: tuple[int, ...]
    keys: tuple[tuple[str, str, int], ...]  # (pool, opponent, seed) of each ordered episode
    strata: tuple[tuple[str, str], ...]
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, episodes: Sequence[EpisodeRecord]) -> Strata:
        order = sorted(range(len(episodes)), key=lambda i: episode_key(episodes[i]))
        keys = tuple((episodes[i].pool, episodes[i].opponent, episodes[i].seed) for i in order)
        strata: list[tuple[str, str]] = []
        sizes: list[int] = []
        for pool, opponent, _ in keys:
            if strata and strata[-1] == (pool, opponent):
                sizes[-1] += 1
            else:
                strata.append((pool, opponent))
                sizes.append(1)
        size_array = np.array(sizes, dtype=int)
        return cls(order=tuple(order), keys=keys, strata=tuple(strata),
                   starts=np.cumsum(size_array) - size_array, sizes=size_array)

    def sample_indices(self, samples: int, rng: np.random.Generator) -> np.ndarray:
        """``samples`` resamplings with replacement within each stratum (samples × episodes)."""
        start = np.repeat(self.starts, self.sizes)
        size = np.repeat(self.sizes, self.sizes)
        return start + rng.integers(0, size, size=(samples, len(self.order)))

    def require_aligned(self, other: Strata) -> None:
        """Raise unless ``other`` holds the same (pool, opponent, seed) episodes: a paired comparison's premise."""
        if self.keys != other.keys:
            raise ValueError("a paired comparison needs both rows evaluated on the same pools, opponents and "
                             "seeds (common random numbers); these differ")


def check_settings(bootstrap_samples: int, confidence: float) -> None:
    if bootstrap_samples < 1:
        raise ValueError(f"bootstrap_samples must be at least 1, got {bootstrap_samples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def interval(point: float, resampled: np.ndarray, confidence: float) -> dict[str, float]:
    """``{"value", "ci_low", "ci_high"}``: the point estimate and the percentile interval of ``resampled``."""
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return {"value": float(point), "ci_low": float(low), "ci_high": float(high)}
