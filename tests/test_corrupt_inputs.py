"""Damaged inputs are one line naming the file and what is wrong, exit code 2, never a traceback.

Parquet splits (truncated, garbage, empty, a dropped column) through the
readers of the ``validate`` and ``base_model`` / ``sft`` stages; model
folders (no weights, truncated or garbage safetensors, a garbage
``tokenizer.json``) through the model loader and the ``sft`` stage.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from sepo.data.files import parquet_bytes, read_split
from sepo.data.schema import SCHEMA
from sepo.errors import ConfigError
from sepo.models.loading import load_model_and_tokenizer
from tests.repo_files import load_repo_file
from tests.test_training_chat_tokens import tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]


def _stage(name: str):
    return load_repo_file(f"stages/{name}.py", f"stage_{name}")


def _one_row() -> pa.Table:
    message = [{"role": "user", "content": "hi"}]
    row = {"id": "e/0", "episode_id": "e", "episode_seed": 1, "dataset": "multi", "game": "ipd",
           "demonstrator": "TFT", "opponent": "Grim", "round": 1, "prompt": message,
           "completion": [{"role": "assistant", "content": "Action: COOPERATE"}], "action": "COOPERATE",
           "legal_actions": ["COOPERATE", "DEFECT"]}
    return pa.Table.from_pylist([row], schema=SCHEMA)


def _good_bytes() -> bytes:
    return parquet_bytes(_one_row(), 3)


DAMAGED_PARQUET = {
    "truncated": lambda: _good_bytes()[: len(_good_bytes()) // 2],
    "garbage": lambda: b"this is not parquet at all" * 40,
    "empty": lambda: b"",
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_PARQUET))
def test_a_damaged_parquet_split_is_one_line_naming_the_file(damage, tmp_path):
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi/train.parquet").write_bytes(DAMAGED_PARQUET[damage]())
    with pytest.raises(ConfigError) as raised:
        read_split(tmp_path, "multi/train.parquet")
    message = str(raised.value)
    assert "multi/train.parquet: not a readable Parquet file" in message and "\n" not in message


def test_a_dropped_column_is_named_as_missing(tmp_path):
    (tmp_path / "multi").mkdir()
    (tmp_path / "multi/train.parquet").write_bytes(parquet_bytes(_one_row().drop_columns(["action"]), 3))
    with pytest.raises(ConfigError, match=r"train.parquet: missing column\(s\) action; the file has id, "):
        read_split(tmp_path, "multi/train.parquet")


def test_the_sft_readers_of_a_stage_exit_2_in_one_line(tmp_path, capsys):
    """base_model (and sft) read the splits through sepo.sft: garbage there stops the stage in one line."""
    data = tmp_path / "sft"
    for dataset in ("multi", "kuhn", "neg_items"):
        (data / dataset).mkdir(parents=True)
        for split in ("train", "valid"):
            (data / dataset / f"{split}.parquet").write_bytes(b"garbage")
    out = tmp_path / "base"
    assert _stage("base_model").main(["--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("base_model: error: ") and "not a readable Parquet file" in err
    assert len(err.splitlines()) == 1 and not out.exists()


@pytest.fixture
def model_copy(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir(), folder)
    return folder


def _load_error(folder: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_model_and_tokenizer(folder)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_folder_without_weights_is_named_as_such(model_copy):
    (model_copy / "model.safetensors").unlink()
    assert "holds no weights" in _load_error(model_copy)


def test_truncated_safetensors_are_named(model_copy):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    assert "model.safetensors: not a readable safetensors file" in _load_error(model_copy)


def test_garbage_safetensors_are_named(model_copy):
    (model_copy / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    assert "model.safetensors: not a readable safetensors file" in _load_error(model_copy)


def test_a_garbage_tokenizer_is_named(model_copy):
    (model_copy / "tokenizer.json").write_text("{ this is not json")
    assert "tokenizer.json: not valid JSON" in _load_error(model_copy)


@pytest.mark.skipif(not (ROOT / "data/sft/kuhn/train.parquet").is_file(), reason="needs the generate stage's data")
def test_the_sft_stage_keeps_its_output_when_the_base_is_damaged(model_copy, tmp_path, capsys):
    (model_copy / "model.safetensors").write_bytes(b"garbage")
    out = tmp_path / "sft-out"
    out.mkdir()
    (out / "kept").write_text("earlier model")
    code = _stage("sft").main(["--data", str(ROOT / "data/sft"), "--base", str(model_copy), "--out", str(out),
                               "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("sft: error: ")
    assert "model.safetensors: not a readable safetensors file" in err
    assert (out / "kept").read_text() == "earlier model"
