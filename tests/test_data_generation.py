"""SFT data generation: exact sizes, the engine's chat format, reasoning, determinism, the card."""

import copy
import io
import json
import math
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard
from hypothesis import given
from hypothesis import strategies as st

from sepo.config import Params, load_params, parse_params
from sepo.data.card import hub_features
from sepo.data.files import output_files
from sepo.data.reasoning import DemonstratorAgent
from sepo.data.schema import COLUMNS, SCHEMA, SPLITS
from sepo.data.sft import generate_datasets, largest_remainder, plan_quotas
from sepo.data.validation import approximate_tokens
from sepo.games.parsing import ACTION_PREFIX, parse_action
from sepo.rollout import EpisodeSpec, play_episodes

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
SMALL_SIZES = {"multi": (300, 75), "kuhn": (120, 30), "neg_items": (80, 20)}


def small_params(seed: int = 0) -> Params:
    raw = copy.deepcopy(RAW)
    raw["data"]["seed"] = seed
    for name, (train, valid) in SMALL_SIZES.items():
        raw["data"]["datasets"][name].update(train_examples=train, valid_examples=valid)
    return parse_params(raw)


@pytest.fixture(scope="module")
def small():
    params = small_params()
    return params, generate_datasets(params)


def rows_of(data, dataset):
    return [row for split in SPLITS for row in data.tables[dataset][split].to_pylist()]


@given(st.integers(0, 10_000), st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8))
def test_largest_remainder_is_exact_and_within_one_of_the_proportion(total, weights):
    shares = {f"s{i}": w for i, w in enumerate(weights)}
    counts = largest_remainder(total, shares)
    assert sum(counts.values()) == total
    for name, share in shares.items():
        assert abs(counts[name] - total * share / sum(weights)) < 1


def test_paper_sizes_are_planned_exactly_with_mixture_shares():
    params = load_params(ROOT / "params.yaml")
    quotas = plan_quotas(params)
    for dataset, spec in params.data.datasets.items():
        for split, target in (("train", spec.train_examples), ("valid", spec.valid_examples)):
            mine = [q for q in quotas if q.dataset == dataset and q.split == split]
            assert sum(q.examples for q in mine) == target
            for game in spec.games:
                game_total = sum(q.examples for q in mine if q.game == game)
                assert abs(game_total - target / len(spec.games)) < 1
                for q in (q for q in mine if q.game == game):
                    share = params.games[game].demonstrators[q.demonstrator]
                    assert abs(q.examples / game_total - share) < 0.001


def test_generated_tables_have_exact_sizes_schema_and_manifest_counts(small):
    params, data = small
    for dataset, (train, valid) in SMALL_SIZES.items():
        tables = data.tables[dataset]
        assert (tables["train"].num_rows, tables["valid"].num_rows) == (train, valid)
        assert tables["train"].schema.equals(SCHEMA) and tuple(tables["valid"].column_names) == COLUMNS
        info = data.manifest["datasets"][dataset]
        for split in SPLITS:
            rows = tables[split].to_pylist()
            split_info = info["splits"][split]
            assert split_info["examples"] == len(rows)
            assert split_info["episodes"] == len({r["episode_id"] for r in rows})
            for game, counts in split_info["games"].items():
                for demonstrator, c in counts["demonstrators"].items():
                    assert c["examples"] == sum(r["game"] == game and r["demonstrator"] == demonstrator
                                                for r in rows)
    assert data.manifest["seed"] == params.data.seed


def test_splits_share_no_episode_and_ids_are_unique(small):
    _, data = small
    for dataset in SMALL_SIZES:
        episodes = {split: {r["episode_id"] for r in data.tables[dataset][split].to_pylist()} for split in SPLITS}
        assert not episodes["train"] & episodes["valid"]
        ids = [r["id"] for r in rows_of(data, dataset)]
        assert len(ids) == len(set(ids))


def test_opponents_come_from_the_training_pool(small):
    params, data = small
    for dataset in SMALL_SIZES:
        for row in rows_of(data, dataset):
            assert row["opponent"] in params.games[row["game"]].pools.train


def test_every_example_is_the_engines_chat_up_to_a_decision(small):
    """Replaying an episode through the lockstep engine gives exactly the rows' prompts and replies."""
    params, data = small
    for dataset in SMALL_SIZES:
        by_episode = {}
        for row in rows_of(data, dataset):
            by_episode.setdefault(row["episode_id"], []).append(row)
        for episode_rows in list(by_episode.values())[:12]:
            first = episode_rows[0]
            game = params.game(first["game"])
            opponent = params.strategy(first["game"], first["opponent"])
            agent = DemonstratorAgent(params.strategy(first["game"], first["demonstrator"]))
            played = play_episodes([EpisodeSpec(game, opponent, "train", first["episode_seed"])], agent)[0]
            for row in episode_rows:
                k = int(row["id"].rsplit("/", 1)[1])
                assert row["prompt"] == played.messages[: 2 * k + 2]
                assert row["completion"] == [played.messages[2 * k + 2]]
                assert row["action"] == played.record.decisions[k].action
                assert row["round"] == played.record.decisions[k].round


def test_chat_format_and_action_line(small):
    _, data = small
    for dataset in SMALL_SIZES:
        for row in rows_of(data, dataset):
            roles = [m["role"] for m in row["prompt"]]
            assert roles[0] == "system" and roles[-1] == "user"
            assert roles[1:] == ["user", "assistant"] * ((len(roles) - 2) // 2) + ["user"]
            (reply,) = row["completion"]
            assert reply["role"] == "assistant"
            assert reply["content"].splitlines()[-1] == ACTION_PREFIX + row["action"]
            assert row["action"] in row["legal_actions"]
            assert parse_action(reply["content"], row["legal_actions"]) == row["action"]


def test_reasoning_restates_the_state_and_cites_the_opponent(small):
    _, data = small
    for dataset in SMALL_SIZES:
        for row in rows_of(data, dataset):
            lines = row["completion"][0]["content"].splitlines()
            state = row["prompt"][-1]["content"]
            assert len(lines) == 3
            assert lines[0].startswith(state.splitlines()[0])  # the round line, as the prompt words it
            listed = ", ".join(row["legal_actions"])
            assert (f"Legal: {listed}." in lines[0]) == (len(listed) <= 60)
            if row["game"] == "negotiation_items":
                # too many demands to list: their form, with the pool's counts the demand must respect
                form = re.search(r"of the form '([^']*)'", state).group(1)
                assert f"Legal: {form}." in lines[0]
                demand = dict(part.split("=") for part in row["action"].split())
                bounds = dict(re.findall(r"(\w+)=<0\.\.(\d+)>", form))
                assert all(int(demand[item]) <= int(bound) for item, bound in bounds.items())
            if row["round"] == 1:
                assert lines[1] == "No earlier rounds."
            else:
                assert lines[1].startswith("Previous round: opponent played ")


def test_reasoning_fits_the_generation_budget(small):
    params, data = small
    budget = params.generation.max_new_tokens
    longest = max(approximate_tokens(r["completion"][0]["content"])
                  for dataset in SMALL_SIZES for r in rows_of(data, dataset))
    assert longest <= budget - 8, "templated replies must leave headroom under generation.max_new_tokens"


@pytest.mark.parametrize(("game_name", "demonstrator", "opponent"),
                         [("auction", "ValueBid", "Truthful"), ("kuhn", "NashApprox", "AlwaysBet")])
def test_private_information_is_restated(game_name, demonstrator, opponent):
    params = small_params()
    played = play_episodes([EpisodeSpec(params.game(game_name), params.strategy(game_name, opponent), "train", 3)],
                           DemonstratorAgent(params.strategy(game_name, demonstrator)))[0]
    for decision, reply in zip(played.record.decisions, played.messages[2::2], strict=True):
        dealt = played.record.rounds[decision.round - 1].private[0]  # the agent's value or card
        assert f"Private: {dealt}." in reply["content"]


def test_same_params_same_bytes_other_seed_other_bytes(small):
    params, data = small
    again = output_files(generate_datasets(params), params)
    first = output_files(data, params)
    assert first == again
    other = output_files(generate_datasets(small_params(seed=1)), small_params(seed=1))
    for name, content in first.items():
        if name.endswith(".parquet"):
            assert other[name] != content


def test_parquet_is_zstd_and_the_manifest_is_sorted_json(small):
    params, data = small
    files = output_files(data, params)
    meta = pq.ParquetFile(io.BytesIO(files["kuhn/train.parquet"])).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    manifest = files["manifest.json"].decode()
    assert manifest == json.dumps(json.loads(manifest), indent=2, sort_keys=True) + "\n"


def test_card_loads_with_datasets_and_matches_the_schema(small, tmp_path):
    datasets = pytest.importorskip("datasets")
    params, data = small
    for name, content in output_files(data, params).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    card = DatasetCard.load(tmp_path / "README.md")  # the Hub's own parser of the YAML header
    assert card.data.license == "apache-2.0"
    configs = {c["config_name"]: c for c in card.data.configs}
    assert set(configs) == set(SMALL_SIZES) and configs["multi"].get("default") is True
    assert hub_features() == datasets.Features.from_arrow_schema(SCHEMA)._to_yaml_list()
    cache = tmp_path / "hf_cache"
    loaded = datasets.load_dataset(str(tmp_path), "kuhn", cache_dir=str(cache))
    assert {s: loaded[s].num_rows for s in loaded} == {"train": 120, "validation": 30}
    assert loaded["train"].features == datasets.Features.from_arrow_schema(SCHEMA)
    parquet = datasets.load_dataset("parquet", data_files={"train": str(tmp_path / "multi/train.parquet")},
                                    cache_dir=str(cache))
    assert parquet["train"].num_rows == 300
    assert math.isclose(sum(r["game"] == "ipd" for r in parquet["train"]) / 300, 1 / 3)


def test_card_configs_and_a_plain_parquet_load_agree_on_the_splits(small, tmp_path, monkeypatch):
    """`load_dataset(folder, name)` (the card's configs) and `load_dataset("parquet", data_dir=...)` (split
    names inferred from the file names) give the same splits with the same rows, offline."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    params, data = small
    for name, content in output_files(data, params).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    for name, (train, valid) in SMALL_SIZES.items():
        by_card = datasets.load_dataset(str(tmp_path), name, cache_dir=str(tmp_path / "cache_card"))
        by_files = datasets.load_dataset("parquet", data_dir=str(tmp_path / name),
                                         cache_dir=str(tmp_path / "cache_files"))
        assert set(by_card) == set(by_files) == {"train", "validation"}
        for split, rows in (("train", train), ("validation", valid)):
            assert by_card[split].num_rows == by_files[split].num_rows == rows
            assert by_card[split]["id"] == by_files[split]["id"]
        card_info = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(tmp_path / "README.md").data)[name]
        assert {s.name: s.num_examples for s in card_info.splits.values()} == {"train": train, "validation": valid}
