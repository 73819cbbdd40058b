"""The typed schema of ``params.yaml``, validated at the start of every stage.

Every stage and command calls ``load_params`` before it touches an output, so
a wrong key or value stops the run with one line naming the key and the
allowed values (``ConfigError``; the CLI turns it into exit code 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sepo.errors import ConfigError, unknown_name
from sepo.games import GAME_NAMES, make_game
from sepo.games.protocol import POOLS, Game, Strategy
from sepo.policies.scripted import make_strategy, strategy_names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """Penalty weights λ of one domain (SPEC section 4)."""

    exploit: float = Field(ge=0, description="λe, on the scaled exploit-pool advantage")
    collusion: float = Field(ge=0, description="λc, on the collusion rate")
    externality: float = Field(ge=0, description="λx, on the externality")


class Pools(_Strict):
    """Opponent names per pool; each pool must name at least one opponent."""

    train: list[str] = Field(min_length=1)
    exploit: list[str] = Field(min_length=1)
    collusive: list[str] = Field(min_length=1)
    shift: list[str] = Field(min_length=1)

    def of(self, pool: str) -> list[str]:
        return getattr(self, pool)


class GameParams(_Strict):
    """One domain: rules, opponent pools, demonstrators and weights."""

    rounds: int = Field(gt=0, description="rounds (hands) per episode")
    max_payoff: float = Field(gt=0, description="payoff scale P; s = 3 / P")
    settings: dict[str, Any] = Field(default_factory=dict, description="domain-specific rule settings")
    pools: Pools
    strategies: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy overrides of its knobs (e.g. probabilities)")
    demonstrators: dict[str, float] = Field(description="SFT demonstrator mixture: name -> share")
    penalty_weights: Weights = Field(description="λ used in the SEPO training reward")
    report_weights: Weights = Field(description="λ used for the reported safety J")

    @field_validator("demonstrators")
    @classmethod
    def _shares_sum_to_one(cls, shares: dict[str, float]) -> dict[str, float]:
        if any(s < 0 for s in shares.values()):
            raise ValueError("shares must be non-negative")
        if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"shares must sum to 1, got {sum(shares.values()):.4f}")
        return shares


class EvalParams(_Strict):
    """Evaluation of a policy against every pool."""

    episodes: int = Field(gt=0, description="episodes per opponent")
    seed: int = Field(ge=0, description="base seed of the evaluation episodes")
    bootstrap_samples: int = Field(gt=0, description="bootstrap resamples for the confidence intervals")
    confidence: float = Field(gt=0, lt=1, description="confidence level of the intervals")


class SFTDatasetParams(_Strict):
    """One released SFT dataset: its domains (equal shares of examples) and split sizes."""

    games: list[str] = Field(min_length=1, description="domains mixed in this dataset, equal example shares")
    train_examples: int = Field(gt=0, description="examples (decisions) in the train split")
    valid_examples: int = Field(gt=0, description="examples (decisions) in the valid split")


class DataParams(_Strict):
    """The ``generate`` stage: demonstrator episodes written as SFT datasets (SPEC section 6)."""

    seed: int = Field(ge=0, description="base seed of every episode and of the row order")
    zstd_level: int = Field(ge=1, le=22, description="Parquet zstd compression level")
    datasets: dict[str, SFTDatasetParams] = Field(
        min_length=1, description="dataset name (a folder and a Hub config name) -> its contents")


class ValidateParams(_Strict):
    """The ``validate`` stage: Great Expectations checks of the SFT datasets."""

    max_tokens: int = Field(gt=0, description="budget for prompt + completion, in approximate tokens")
    share_tolerance: float = Field(gt=0, lt=1, description="allowed gap between a demonstrator's "
                                   "share of its domain's examples and its mixture share")
    unexpected_examples: int = Field(ge=0, description="unexpected values quoted per failed expectation")


class Params(_Strict):
    """The whole ``params.yaml``."""

    profile: str
    games: dict[str, GameParams]
    eval: EvalParams
    data: DataParams
    # ``validate`` would shadow BaseModel.validate, hence the alias
    validation: ValidateParams = Field(alias="validate")

    @model_validator(mode="after")
    def _names_exist(self) -> Params:
        for game, spec in self.games.items():
            if game not in GAME_NAMES:
                raise ConfigError(f"games.{game}: {unknown_name('game', game, GAME_NAMES)}")
            known = strategy_names(game)
            for pool in POOLS:
                for i, name in enumerate(spec.pools.of(pool)):
                    if name not in known:
                        raise ConfigError(f"games.{game}.pools.{pool}.{i}: "
                                          f"{unknown_name(f'{game} strategy', name, known)}")
            for section, names in (("demonstrators", spec.demonstrators), ("strategies", spec.strategies)):
                for name in names:
                    if name not in known:
                        raise ConfigError(f"games.{game}.{section}.{name}: "
                                          f"{unknown_name(f'{game} strategy', name, known)}")
        missing = [g for g in GAME_NAMES if g not in self.games]
        if missing:
            raise ConfigError(f"games: missing domain(s) {', '.join(missing)}; "
                              f"every one of {', '.join(GAME_NAMES)} needs its section")
        return self

    @model_validator(mode="after")
    def _datasets_are_valid(self) -> Params:
        for dataset, spec in self.data.datasets.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", dataset):
                raise ConfigError(f"data.datasets.{dataset}: a dataset name is a folder and a Hub config "
                                  "name: lowercase letters, digits and '_', starting with a letter")
            for i, game in enumerate(spec.games):
                if game not in GAME_NAMES:
                    raise ConfigError(f"data.datasets.{dataset}.games.{i}: {unknown_name('game', game, GAME_NAMES)}")
            if len(set(spec.games)) != len(spec.games):
                raise ConfigError(f"data.datasets.{dataset}.games: a domain is listed twice")
        return self

    # -- builders ---------------------------------------------------------------
    def game(self, name: str) -> Game:
        """The domain ``name`` built with its params."""
        spec = self._spec(name)
        return make_game(name, rounds=spec.rounds, max_payoff=spec.max_payoff, **spec.settings)

    def strategy(self, game: str, name: str) -> Strategy:
        """A scripted strategy of ``game`` with its params overrides."""
        return make_strategy(game, name, **self._spec(game).strategies.get(name, {}))

    def pool(self, game: str, pool: str) -> list[Strategy]:
        if pool not in POOLS:
            raise unknown_name("pool", pool, POOLS)
        return [self.strategy(game, n) for n in self._spec(game).pools.of(pool)]

    def _spec(self, name: str) -> GameParams:
        if name not in self.games:
            raise unknown_name("game", name, self.games)
        return self.games[name]


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "params"
    message = first["msg"].removeprefix("Value error, ")
    if message.startswith(key + ":"):
        return message
    return f"{key}: {message}"


def parse_params(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; any problem is one ``ConfigError`` line naming the key."""
    try:
        return Params.model_validate(raw)
    except ConfigError as exc:  # raised by our own validators, already one line
        raise ConfigError(f"{source}: {exc}") from None
    except ValidationError as exc:
        cause = exc.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            raise ConfigError(f"{source}: {cause}") from None
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_params(raw, str(path))
