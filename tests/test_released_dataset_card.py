"""The released dataset card (data/sft/README.md) names the splits as `load_dataset("parquet", data_dir=...)` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "sft"


def test_released_card_and_a_plain_parquet_load_name_the_same_splits(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    if not (DATA / "README.md").is_file() or not (DATA / "kuhn" / "valid.parquet").is_file():
        pytest.skip("needs the released data/sft (dvc pull generate)")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    card = DatasetCard.load(DATA / "README.md")
    for config in card.data.configs:
        folder = DATA / config["config_name"]
        by_files = datasets.load_dataset_builder("parquet", data_dir=str(folder), cache_dir=str(tmp_path))
        assert {f["split"] for f in config["data_files"]} == set(by_files.config.data_files) == {"train", "validation"}
    by_card = datasets.load_dataset(str(DATA), "kuhn", cache_dir=str(tmp_path / "card"))
    by_files = datasets.load_dataset("parquet", data_dir=str(DATA / "kuhn"), cache_dir=str(tmp_path / "files"))
    assert set(by_card) == set(by_files) == {"train", "validation"}
    assert by_card["validation"]["id"] == by_files["validation"]["id"]
