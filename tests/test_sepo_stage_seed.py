"""The sepo stage's --seed: a replicate run differs from the main one only in sepo.seed, validated as in params."""

from __future__ import annotations

import pytest

from sepo.config import with_sepo_seed
from sepo.errors import ConfigError
from tests.model_fixtures import PARAMS


def test_a_replicate_seed_replaces_sepo_seed_only():
    replicate = with_sepo_seed(PARAMS, 2)
    assert replicate.sepo.seed == 2
    assert replicate.model_copy(update={"sepo": PARAMS.sepo}) == PARAMS


def test_a_seed_out_of_range_is_refused_like_in_params():
    with pytest.raises(ConfigError, match=r"sepo\.seed"):
        with_sepo_seed(PARAMS, 2**40)
