"""Paired comparisons between report rows (SPEC section 4): SEPO − SFT per domain.

Every row of a domain is evaluated on the same episode seeds (common random
numbers), so two rows' episodes pair up one to one by (pool, opponent,
seed).  A difference is taken with a paired bootstrap: one set of
resampled indices per sample, applied to both rows (``sepo.bootstrap``), so
the deals' and the opponents' dice's variance cancels.  The compared
quantities are SPEC's exploit, collusion, externality and safety, plus the
scalars of the domain's strategy audit when it has one (Kuhn's NashConv and
exploitability of the played policy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sepo.bootstrap import Strata, check_settings, interval
from sepo.games.protocol import EpisodeRecord, Game
from sepo.metrics import PAIRED_METRICS, metric_samples

Row = tuple[Mapping[str, Any], Sequence[EpisodeRecord]]  # (metrics file, its episodes)


def difference_key(treated: str, control: str) -> str:
    """The name of ``treated`` − ``control`` in a metrics file (the ablation's ``paired_differences``)."""
    return f"{treated} − {control}"


def row_difference(game: Game, treated: Row, control: Row, *, bootstrap_samples: int,
                   confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """treated − control for ``PAIRED_METRICS`` and the audit's scalars; each ``(metrics file, episodes)``.

    The pooled difference of one treated row: one paired bootstrap, written once.
    """
    return pooled_difference(game, [treated], control, bootstrap_samples=bootstrap_samples,
                             confidence=confidence, seed=seed)


def pooled_difference(game: Game, treated: Sequence[Row], control: Row, *, bootstrap_samples: int,
                      confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """The mean over several treated rows (SEPO seeds) of treated − control, with a joint paired bootstrap.

    All rows play the same episode seeds; each bootstrap sample applies one
    set of indices to every row, so the interval is over episodes with the
    seeds held fixed.  The spread between seeds is reported apart (one
    difference per seed): with three seeds an interval over seeds would be
    too wide to mean much, and too narrow to trust.
    """
    check_settings(bootstrap_samples, confidence)
    control_result, control_records = control
    strata = Strata.of(control_records)
    for _, records in treated:
        strata.require_aligned(Strata.of(records))
    indices = strata.sample_indices(bootstrap_samples, np.random.default_rng(seed))
    weights = control_result["weights"]
    control_point, control_samples = metric_samples(game, control_records, weights, indices)
    audit = game.strategy_audit()
    audited = audit is not None and all("audit" in r for r, _ in (*treated, control))
    if audited:
        control_audit = audit.scalar_samples(control_records, control_result["audit"], indices)
    points: dict[str, list[float]] = {}
    samples: dict[str, list[np.ndarray]] = {}
    for result, records in treated:
        point, sample = metric_samples(game, records, weights, indices)
        for name in PAIRED_METRICS:
            points.setdefault(name, []).append(point[name] - control_point[name])
            samples.setdefault(name, []).append(sample[name] - control_samples[name])
        if audited:
            scalars = audit.scalar_samples(records, result["audit"], indices)
            for name in audit.scalars:
                points.setdefault(name, []).append(result["audit"]["scalars"][name]["value"]
                                                   - control_result["audit"]["scalars"][name]["value"])
                samples.setdefault(name, []).append(scalars[name] - control_audit[name])
    return {name: interval(float(np.mean(points[name])), np.mean(samples[name], axis=0), confidence)
            for name in points}
