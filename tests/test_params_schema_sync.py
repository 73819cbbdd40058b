"""The params schema stays in step with the code it describes.

The domain settings, strategy knobs and scheduler names are written out in
the schema (so that reading params costs no transformers import and each
knob has a range); these tests fail when an engine, a strategy or
transformers gains or loses one.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from sepo.config import SFT_SCHEDULERS
from sepo.game_settings import SETTINGS, knobs_model
from sepo.games import GAME_NAMES, game_class
from sepo.policies.scripted import make_strategy, strategy_names


@pytest.mark.parametrize("game", GAME_NAMES)
def test_every_strategy_knob_is_typed_and_every_typed_knob_exists(game):
    for name in strategy_names(game):
        # fields marked params=False are state set in code (BestResponse's bound target), never knobs
        knobs = {f.name for f in dataclasses.fields(make_strategy(game, name))
                 if f.metadata.get("params", True)} - {"name"}
        assert set(knobs_model(game, name).model_fields) == knobs, (game, name)


@pytest.mark.parametrize("game", GAME_NAMES)
def test_the_settings_schema_has_the_engines_keywords_and_defaults(game):
    signature = inspect.signature(game_class(game).__init__).parameters
    engine = {k: p.default for k, p in signature.items() if k not in ("self", "rounds", "max_payoff")}
    model = SETTINGS[game]
    assert set(model.model_fields) == set(engine)
    for key, field in model.model_fields.items():
        if field.default is not None:
            default = engine[key]
            assert field.default == (list(default) if isinstance(default, tuple) else default), (game, key)


def test_the_scheduler_names_are_exactly_those_of_transformers_that_build_from_params():
    import torch
    from transformers import get_scheduler
    from transformers.trainer_utils import SchedulerType

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    builds = []
    for kind in SchedulerType:
        try:
            get_scheduler(kind.value, optimizer, num_warmup_steps=1, num_training_steps=10)
        except (TypeError, ValueError):
            continue
        builds.append(kind.value)
    assert list(SFT_SCHEDULERS) == builds
