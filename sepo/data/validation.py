"""Great Expectations suites for the SFT datasets, and their JSON report.

One suite per dataset runs over its train and valid rows together (a
``split`` column tells them apart).  Checks that are not a single column's
property are computed first as derived columns, then asserted by an
expectation, so every check is an expectation with a name in the report:

- schema and types: the columns in schema order, each value of the right
  Python type, no nulls, ``prompt`` a chat (system, then user/assistant
  turns, a user message last), ``completion`` one assistant message;
- unique ids; ``dataset``, ``game``, ``demonstrator`` (per game) and
  ``opponent`` (the game's training pool) among the known names; ``round``
  within the game's rounds;
- ``action`` in ``legal_actions``; the completion's last line equals
  ``Action: <action>``;
- train and valid share no episode;
- per split and game, every demonstrator's share of the examples within
  ``validate.share_tolerance`` of its mixture share;
- prompt + completion within ``validate.max_tokens`` approximate tokens.

Token counts are approximate because the tokenizer is trained later, on this
very data: a word, a single digit or a punctuation mark counts one token,
plus four per message for the chat template's role markers.  Byte-level BPE
tokenizers split digits and punctuation the same way and learn the corpus's
few hundred words whole, so the count is close for a tokenizer trained here
and an underestimate for a general one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from sepo.config import Params
from sepo.data.files import read_split
from sepo.data.schema import COLUMNS, SCHEMA, SPLITS, split_path
from sepo.games.parsing import ACTION_PREFIX

# Great Expectations reads this when it is imported: no usage statistics leave the machine.
os.environ["GX_ANALYTICS_ENABLED"] = "false"

_TOKEN = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")
#: role markers a chat template puts around every message
TOKENS_PER_MESSAGE = 4
#: roles of a valid prompt: the system rules, then (user, assistant) turns, the current state last
PROMPT_ROLES = r"^system(?:,user,assistant)*,user$"

_PYTHON_TYPES = {"string": "str", "int64": "int"}


@lru_cache(maxsize=1 << 16)
def approximate_tokens(text: str) -> int:
    """Words, single digits and punctuation marks in ``text`` (see the module docstring)."""
    return len(_TOKEN.findall(text))


def _python_type(dtype: pa.DataType) -> str:
    return "list" if pa.types.is_list(dtype) else _PYTHON_TYPES[str(dtype)]


# -- the frame the suites run on ---------------------------------------------------------

def _messages(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    return [m if isinstance(m, dict) else {} for m in value]


def _roles(messages: list[dict[str, Any]] | None) -> str | None:
    return None if messages is None else ",".join(str(m.get("role")) for m in messages)


def _last_line(messages: list[dict[str, Any]] | None) -> str | None:
    if not messages or not isinstance(messages[-1].get("content"), str):
        return None
    lines = messages[-1]["content"].strip().splitlines()
    return lines[-1].strip() if lines else ""


def _tokens(*chats: list[dict[str, Any]] | None) -> int:
    messages = [m for chat in chats if chat for m in chat]
    return sum(approximate_tokens(m.get("content") or "") + TOKENS_PER_MESSAGE for m in messages)


def _pylist(tables: Sequence[pa.Table], name: str) -> list[Any]:
    """A column of all tables as Python values; nulls where a table lacks it."""
    return [v for t in tables for v in (t.column(name).to_pylist() if name in t.column_names
                                         else [None] * t.num_rows)]


Mixtures = Mapping[str, Mapping[str, float]]  # game -> demonstrator -> share


def share_column(split: str, game: str, demonstrator: str) -> str:
    """1 on the demonstrator's rows of (split, game), 0 on the group's other rows, null elsewhere:
    its mean is the demonstrator's share of the group, with no row filter to pay for."""
    return f"share:{split}:{game}:{demonstrator}"


def validation_frame(splits: dict[str, pa.Table], mixtures: Mixtures,
                     replayed: Sequence[bool | None] | None = None) -> pd.DataFrame:
    """Train and valid rows with a ``split`` column and the derived columns the suite checks.

    ``replayed`` holds, per row in split order, whether the engine's replay of
    its episode agrees with it (``sepo.data.replay``); None where it could not be run.

    Derived values of a row with a missing input are null, so a null is
    reported by its own not-null expectation, not by every check built on it.
    """
    tables = list(splits.values())
    frame = pd.concat([t.to_pandas(types_mapper=pd.ArrowDtype) for t in tables], ignore_index=True)
    frame["split"] = [split for split, t in splits.items() for _ in range(t.num_rows)]
    raw = {name: _pylist(tables, name) for name in
              ("prompt", "completion", "action", "legal_actions", "game", "demonstrator", "opponent", "episode_id")}
    prompts = [_messages(v) for v in raw["prompt"]]
    completions = [_messages(v) for v in raw["completion"]]
    actions, games = raw["action"], raw["game"]
    derived = {
        "prompt_roles": [_roles(p) for p in prompts],
        "completion_roles": [_roles(c) for c in completions],
        "completion_last_line": [_last_line(c) for c in completions],
        "action_line": [None if a is None else ACTION_PREFIX + a for a in actions],
        "action_is_legal": [None if a is None or options is None else a in options
                            for a, options in zip(actions, raw["legal_actions"], strict=True)],
        "game_demonstrator": [f"{g}/{d}" for g, d in zip(games, raw["demonstrator"], strict=True)],
        "game_opponent": [f"{g}/{o}" for g, o in zip(games, raw["opponent"], strict=True)],
    }
    # nested columns as plain Python lists: row filters copy them by reference, not by value
    for name in ("prompt", "completion", "legal_actions"):
        if name in frame:
            frame[name] = pd.Series(raw[name], dtype=object)
    for name, values in derived.items():
        frame[name] = pd.Series(values, dtype=object)
    frame["replays_in_engine"] = pd.Series(list(replayed) if replayed is not None else [None] * len(frame),
                                           dtype=object)
    frame["approx_tokens"] = pd.Series([_tokens(p, c) for p, c in zip(prompts, completions, strict=True)],
                                       dtype="int64")
    episodes = pd.Series(raw["episode_id"], dtype=object)
    frame["episode_splits"] = frame["split"].groupby(episodes, dropna=False).transform("nunique").astype("int64")
    names = pd.Series(raw["demonstrator"], dtype=object)
    for split in SPLITS:
        for game, mixture in mixtures.items():
            group = (frame["split"] == split) & (pd.Series(games, dtype=object) == game)
            for demonstrator in mixture:
                frame[share_column(split, game, demonstrator)] = (names == demonstrator).astype(
                    "float64").where(group)
    return frame


def frame_columns(mixtures: Mixtures) -> list[str]:
    """The columns ``validation_frame`` produces from well-formed files, in order."""
    return [*COLUMNS, "split", "prompt_roles", "completion_roles", "completion_last_line", "action_line",
            "action_is_legal", "game_demonstrator", "game_opponent", "replays_in_engine", "approx_tokens",
            "episode_splits",
            *(share_column(split, game, demonstrator)
              for split in SPLITS for game, mixture in mixtures.items() for demonstrator in mixture)]


# -- the suite -----------------------------------------------------------------------------

def _check(name: str, expectation: type, **kwargs: Any) -> Any:
    """An expectation carrying its check name (what the report and the error lines show)."""
    return expectation(meta={"check": name}, **kwargs)


def dataset_mixtures(params: Params, dataset: str) -> Mixtures:
    """The demonstrator mixture of every game of a dataset."""
    return {game: params.games[game].demonstrators for game in params.data.datasets[dataset].games}


def dataset_checks(params: Params, dataset: str) -> list[Any]:
    """Every expectation of one dataset's suite, each named by its ``meta["check"]``."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    games = {g: params.games[g] for g in params.data.datasets[dataset].games}
    tolerance = params.validation.share_tolerance
    known_pairs = [f"{g}/{d}" for g, p in games.items() for d in p.demonstrators]
    pool_pairs = [f"{g}/{o}" for g, p in games.items() for o in p.pools.train]
    checks = [_check("columns_match_schema", gxe.ExpectTableColumnsToMatchOrderedList,
                     column_list=frame_columns(dataset_mixtures(params, dataset)))]
    for field in SCHEMA:
        python_type = _python_type(field.type)
        checks.append(_check(f"{field.name}_not_null", gxe.ExpectColumnValuesToNotBeNull, column=field.name))
        checks.append(_check(f"{field.name}_is_{python_type}", gxe.ExpectColumnValuesToBeOfType,
                             column=field.name, type_=python_type))
    checks += [
        _check("prompt_is_chat", gxe.ExpectColumnValuesToMatchRegex, column="prompt_roles", regex=PROMPT_ROLES),
        _check("completion_is_one_reply", gxe.ExpectColumnValuesToBeInSet,
               column="completion_roles", value_set=["assistant"]),
        _check("ids_unique", gxe.ExpectColumnValuesToBeUnique, column="id"),
        _check("dataset_known", gxe.ExpectColumnValuesToBeInSet, column="dataset", value_set=[dataset]),
        _check("game_known", gxe.ExpectColumnValuesToBeInSet, column="game", value_set=list(games)),
        _check("demonstrator_known", gxe.ExpectColumnValuesToBeInSet,
               column="game_demonstrator", value_set=known_pairs),
        _check("opponent_in_train_pool", gxe.ExpectColumnValuesToBeInSet,
               column="game_opponent", value_set=pool_pairs),
        _check("action_in_legal_actions", gxe.ExpectColumnValuesToBeInSet,
               column="action_is_legal", value_set=[True]),
        _check("episode_replays_in_engine", gxe.ExpectColumnValuesToBeInSet,
               column="replays_in_engine", value_set=[True]),
        _check("last_line_is_action", gxe.ExpectColumnPairValuesToBeEqual,
               column_A="completion_last_line", column_B="action_line"),
        _check("splits_share_no_episode", gxe.ExpectColumnValuesToBeInSet,
               column="episode_splits", value_set=[1]),
        _check("within_token_budget", gxe.ExpectColumnValuesToBeBetween,
               column="approx_tokens", min_value=1, max_value=params.validation.max_tokens),
    ]
    for game, game_params in games.items():
        checks.append(_check(f"round_in_range:{game}", gxe.ExpectColumnValuesToBeBetween,
                             column="round", min_value=1, max_value=game_params.rounds,
                             row_condition=Column("game") == game))
        for split in SPLITS:
            for demonstrator, share in game_params.demonstrators.items():
                column = share_column(split, game, demonstrator)
                checks.append(_check(column, gxe.ExpectColumnMeanToBeBetween, column=column,
                                     min_value=max(0.0, share - tolerance), max_value=min(1.0, share + tolerance)))
    return checks


# -- running and reporting -------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    """GE results hold numpy scalars, pandas NA and tuples; the report is plain JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def run_checks(frame: pd.DataFrame, checks: Sequence[Any], suite_name: str,
               unexpected_examples: int) -> dict[str, dict[str, Any]]:
    """Run the checks as one suite on an ephemeral context: check name -> its report entry, in order."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("sft").add_dataframe_asset(suite_name)
             .add_batch_definition_whole_dataframe("all_rows"))
    # all at once: adding expectations one by one re-serialises the suite each time (quadratic)
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=list(checks)))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": frame}, result_format={
        "result_format": "SUMMARY", "partial_unexpected_count": unexpected_examples,
        "unexpected_index_column_names": ["id"]})
    by_name = {}
    for outcome in result.results:
        details = outcome.result or {}
        entry = {
            "expectation": outcome.expectation_config.type,
            "success": bool(outcome.success),
            "unexpected_count": details.get("unexpected_count", 0),
            "unexpected": details.get("partial_unexpected_list", [])[:unexpected_examples],
            "unexpected_ids": [row.get("id") for row in details.get("partial_unexpected_index_list", [])
                               if isinstance(row, dict)][:unexpected_examples],
        }
        observed = details.get("observed_value")
        if observed is not None and (not outcome.success or not isinstance(observed, list | dict)):
            entry["observed_value"] = observed  # a passing column list would only be noise
        if outcome.exception_info.get("raised_exception"):
            entry["error"] = str(outcome.exception_info.get("exception_message"))
        by_name[outcome.expectation_config.meta["check"]] = _jsonable(entry)
    return {name: by_name[name] for name in (check.meta["check"] for check in checks)}


def validate_dataset(params: Params, folder: str | Path, dataset: str) -> dict[str, Any]:
    """The report of one dataset: success, sizes, token statistics and every check."""
    splits = {split: read_split(folder, split_path(dataset, split)) for split in SPLITS}
    frame = validation_frame(splits, dataset_mixtures(params, dataset), engine_replay(params, splits))
    checks = run_checks(frame, dataset_checks(params, dataset), dataset, params.validation.unexpected_examples)
    failed = [name for name, check in checks.items() if not check["success"]]
    return {
        "success": not failed,
        "failed": failed,
        "examples": {split: table.num_rows for split, table in splits.items()},
        "approx_tokens": {"max": int(frame["approx_tokens"].max()),
                          "mean": round(float(frame["approx_tokens"].mean()), 1),
                          "budget": params.validation.max_tokens},
        "checks": checks,
    }


def engine_replay(params: Params, splits: Mapping[str, pa.Table]) -> list[bool] | None:
    """Per row (split order), whether the engine's replay of its episode agrees (``sepo.data.replay``).

    None when a column the replay needs is missing: the schema check names that.
    """
    from sepo.data.replay import replay_agreement

    needed = ["id", "episode_id", "episode_seed", "game", "opponent", "prompt", "completion", "action",
              "legal_actions"]
    if any(name not in t.column_names for t in splits.values() for name in needed):
        return None
    return replay_agreement(params, [row for t in splits.values() for row in t.select(needed).to_pylist()])


def validate_datasets(params: Params, folder: str | Path) -> dict[str, Any]:
    """The whole report: one entry per dataset of ``params.data``."""
    datasets = {name: validate_dataset(params, folder, name) for name in params.data.datasets}
    return {"success": all(d["success"] for d in datasets.values()), "datasets": datasets}


def metrics_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers for ``dvc metrics``: per dataset, counts and token statistics."""
    return {
        "success": report["success"],
        "datasets": {
            name: {"success": result["success"], "expectations": len(result["checks"]),
                   "failed": len(result["failed"]),
                   **{f"{split}_examples": n for split, n in result["examples"].items()},
                   "approx_tokens_max": result["approx_tokens"]["max"],
                   "approx_tokens_mean": result["approx_tokens"]["mean"]}
            for name, result in report["datasets"].items()
        },
    }


def failure_lines(report: dict[str, Any]) -> list[str]:
    """One line per failed check: dataset, check, how many rows, which ids."""
    lines = []
    for dataset, result in report["datasets"].items():
        for name, check in result["checks"].items():
            if not check["success"]:
                detail = f"{check['unexpected_count']} unexpected" if check["unexpected_count"] else \
                    f"observed {check.get('observed_value')}"
                ids = f" (e.g. {', '.join(map(str, check['unexpected_ids']))})" if check["unexpected_ids"] else ""
                lines.append(f"{dataset}: {name} failed [{check['expectation']}]: {detail}{ids}")
    return lines
