"""The dataset card: README.md with the Hub's YAML header, written next to the Parquet files.

The header is made the way ``datasets`` writes it on ``push_to_hub``: a
``huggingface_hub.DatasetCardData`` filled by ``datasets``' own
``MetadataConfigs`` (one config per dataset, its train and validation files)
and ``DatasetInfosDict`` (the ``datasets.Features`` of the Arrow schema, so card
and files cannot disagree, and the split sizes), then a ``DatasetCard``.  The
files keep their names (``valid.parquet``), but the card calls that split
``validation``, the name ``datasets`` gives it from the file name, so
``load_dataset(folder, name)`` and ``load_dataset("parquet", data_dir=...)``
agree.
"""

from __future__ import annotations

from typing import Any

from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.data_files import SPLIT_KEYWORDS
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from sepo.data.schema import SCHEMA, SPLITS

LICENSE = "apache-2.0"  # the project's license; the data is synthetic

COLUMN_DOCS = {
    "id": "unique example id: `<episode_id>/<decision index>`",
    "episode_id": "`<dataset>/<split>/<game>/<demonstrator>/<index>`; an episode lies in one split only",
    "episode_seed": "seed that replays the episode (same deals and opponent dice)",
    "dataset": "dataset (config) name",
    "game": "domain: ipd, auction, negotiation, negotiation_items or kuhn",
    "demonstrator": "scripted demonstrator that played the agent's seat",
    "opponent": "training-pool opponent it played",
    "round": "1-based round (Kuhn: hand) of the decision",
    "prompt": "the episode's chat up to the decision: system rules, earlier states and replies, "
              "the current state last",
    "completion": "one assistant message: templated reasoning, then `Action: <action>`",
    "action": "the action played",
    "legal_actions": "every legal action at the decision",
}


def hub_split(split: str) -> str:
    """The split name ``datasets`` infers from a split's file name (``valid`` -> ``validation``)."""
    for name, keywords in SPLIT_KEYWORDS.items():
        if split in keywords:
            return str(name)
    raise ValueError(f"datasets infers no split from the file name {split!r}")


def features() -> Features:
    """The ``datasets`` features of every split file, from the Arrow schema."""
    return Features.from_arrow_schema(SCHEMA)


def hub_features() -> list[dict[str, Any]]:
    """The ``features`` list of a config's ``dataset_info``, in the Hub's YAML notation."""
    return features()._to_yaml_list()


def card_data(manifest: dict[str, Any]) -> DatasetCardData:
    """The card's metadata: Hub tags, one config per dataset (the first is the default) and its sizes."""
    datasets = manifest["datasets"]
    data = DatasetCardData(
        license=LICENSE, language=["en"], pretty_name="SEPO demonstrator SFT data",
        task_categories=["text-generation"], tags=["synthetic", "game-theory", "multi-agent", "trl"],
    )
    MetadataConfigs({
        name: {"data_files": [{"split": hub_split(split), "path": info["splits"][split]["file"]} for split in SPLITS],
               **({"default": True} if i == 0 else {})}
        for i, (name, info) in enumerate(datasets.items())
    }).to_dataset_card_data(data)
    DatasetInfosDict({
        name: DatasetInfo(
            features=features(),
            splits=SplitDict({hub_split(split): SplitInfo(name=hub_split(split),
                                                          num_bytes=info["splits"][split]["num_bytes"],
                                                          num_examples=info["splits"][split]["examples"])
                              for split in SPLITS}),
        )
        for name, info in datasets.items()
    }).to_dataset_card_data(data)
    return data


def _sizes_table(manifest: dict[str, Any]) -> list[str]:
    lines = ["| dataset | split | game | examples | episodes |", "| --- | --- | --- | ---: | ---: |"]
    for name, info in manifest["datasets"].items():
        for split in SPLITS:
            for game, counts in info["splits"][split]["games"].items():
                lines.append(f"| {name} | {hub_split(split)} | {game} | {counts['examples']:,} "
                             f"| {counts['episodes']:,} |")
    return lines


def _demonstrator_table(manifest: dict[str, Any], mixtures: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| game | demonstrator | mixture | train examples |", "| --- | --- | ---: | ---: |"]
    for info in manifest["datasets"].values():
        for game, counts in info["splits"]["train"]["games"].items():
            for demonstrator, share in mixtures[game].items():
                n = counts["demonstrators"].get(demonstrator, {}).get("examples", 0)
                lines.append(f"| {game} | {demonstrator} | {share:.2f} | {n:,} |")
    return lines


def dataset_card(manifest: dict[str, Any], mixtures: dict[str, dict[str, float]]) -> str:
    """README.md of the output folder: YAML header, then what the data is and how it was made."""
    first = next(iter(manifest["datasets"]))
    body = [
        "# SEPO demonstrator SFT data",
        "",
        "Synthetic supervised fine-tuning data for language-model agents playing text games",
        "(iterated prisoner's dilemma, first-price auction, Nash demand negotiation,",
        "multi-issue item negotiation, Kuhn poker) against scripted opponents. Scripted",
        "demonstrators, drawn per episode from a fixed mixture, play the training-pool opponents;",
        "every decision of the demonstrator is one example.",
        "",
        "Each row is in TRL's conversational prompt-completion format: `prompt` is the episode's",
        "chat up to the decision (the system message holds the rules, each user message is the",
        "state at a decision, each earlier assistant message is the demonstrator's reply) and",
        "`completion` is the demonstrator's reply: the state restated, the history cited, and a",
        "last line `Action: <action>`. This is the same chat the agents see in training and",
        "evaluation.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'data = load_dataset("path/to/this/folder", "{first}")          # train and validation',
        f'same = load_dataset("parquet", data_dir="path/to/this/folder/{first}")  # the same two splits',
        "```",
        "",
        "## Columns",
        "",
        "| column | meaning |",
        "| --- | --- |",
        *[f"| `{name}` | {COLUMN_DOCS[name]} |" for name in SCHEMA.names],
        "",
        "## Sizes",
        "",
        *_sizes_table(manifest),
        "",
        "## Demonstrators",
        "",
        *_demonstrator_table(manifest, mixtures),
        "",
        "## How it was made",
        "",
        f"Generator `{manifest['generator']}` version {manifest['generator_version']}, seed "
        f"{manifest['seed']}. Train and validation (the files `valid.parquet`) are split by episode:",
        "no episode is in both.",
        "A dataset's examples are shared equally between its games and a game's between its",
        "demonstrators by the mixture (largest-remainder counts); opponents cycle through the",
        "training pool. `manifest.json` holds every count. The data is synthetic: no personal",
        "or third-party content.",
        "",
    ]
    card = DatasetCard(f"---\n{card_data(manifest).to_yaml()}\n---\n\n" + "\n".join(body))
    return str(card)
