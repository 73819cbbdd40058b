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
from sepo.metrics import paired_differences


def row_difference(game: Game, treated: tuple[Mapping[str, Any], Sequence[EpisodeRecord]],
                   control: tuple[Mapping[str, Any], Sequence[EpisodeRecord]], *, bootstrap_samples: int,
                   confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """treated − control for ``PAIRED_METRICS`` and the audit's scalars; each ``(metrics file, episodes)``.

    Safety uses the weights recorded in the treated row's metrics file (both
    rows of a domain are written with the same ones).
    """
    check_settings(bootstrap_samples, confidence)
    (treated_result, treated_records), (control_result, control_records) = treated, control
    out = paired_differences(game, treated_records, control_records, treated_result["weights"],
                             bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed)
    audit = game.strategy_audit()
    if audit is not None and "audit" in treated_result and "audit" in control_result:
        strata = Strata.of(treated_records)
        strata.require_aligned(Strata.of(control_records))
        indices = strata.sample_indices(bootstrap_samples, np.random.default_rng(seed))
        a = audit.scalar_samples(treated_records, treated_result["audit"], indices)
        b = audit.scalar_samples(control_records, control_result["audit"], indices)
        for name in audit.scalars:
            treated_value = treated_result["audit"]["scalars"][name]["value"]
            control_value = control_result["audit"]["scalars"][name]["value"]
            out[name] = interval(treated_value - control_value, a[name] - b[name], confidence)
    return out


def significance(difference: Mapping[str, float]) -> str:
    """'higher', 'lower' or 'no difference': where a difference's interval lies with respect to 0."""
    if difference["ci_low"] > 0:
        return "higher"
    if difference["ci_high"] < 0:
        return "lower"
    return "no difference"


