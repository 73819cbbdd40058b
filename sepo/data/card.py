"""The dataset card: README.md with the Hub's YAML header, written next to the Parquet files.

The header declares one config per dataset (its train and valid files), the
features (derived from the Arrow schema, so card and files cannot disagree),
the split sizes and the license, so the folder can be pushed to a hub
unchanged and ``datasets.load_dataset(folder, name)`` reads it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import yaml

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


def _feature(dtype: pa.DataType) -> dict[str, Any]:
    """One Arrow type in the Hub's YAML feature notation."""
    if pa.types.is_string(dtype):
        return {"dtype": "string"}
    if pa.types.is_integer(dtype):
        return {"dtype": str(dtype)}
    if pa.types.is_list(dtype):
        inner = dtype.value_type
        if pa.types.is_struct(inner):
            return {"list": [{"name": f.name, **_feature(f.type)} for f in inner]}
        return {"list": _feature(inner)["dtype"]}
    raise TypeError(f"no Hub feature notation for {dtype}")


def hub_features(schema: pa.Schema = SCHEMA) -> list[dict[str, Any]]:
    """The ``features`` list of a config's ``dataset_info``."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def card_header(manifest: dict[str, Any]) -> dict[str, Any]:
    datasets = manifest["datasets"]
    return {
        "license": LICENSE,
        "language": ["en"],
        "pretty_name": "SEPO demonstrator SFT data",
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "game-theory", "multi-agent", "trl"],
        "configs": [
            {"config_name": name,
             "data_files": [{"split": split, "path": info["splits"][split]["file"]} for split in SPLITS],
             **({"default": True} if i == 0 else {})}
            for i, (name, info) in enumerate(datasets.items())
        ],
        "dataset_info": [
            {"config_name": name,
             "features": hub_features(),
             "splits": [{"name": split, "num_bytes": info["splits"][split]["num_bytes"],
                         "num_examples": info["splits"][split]["examples"]} for split in SPLITS]}
            for name, info in datasets.items()
        ],
    }


def _sizes_table(manifest: dict[str, Any]) -> list[str]:
    lines = ["| dataset | split | game | examples | episodes |", "| --- | --- | --- | ---: | ---: |"]
    for name, info in manifest["datasets"].items():
        for split in SPLITS:
            for game, counts in info["splits"][split]["games"].items():
                lines.append(f"| {name} | {split} | {game} | {counts['examples']:,} | {counts['episodes']:,} |")
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
        f'data = load_dataset("path/to/this/folder", "{first}")          # train and valid',
        f'train = load_dataset("parquet", data_files="{first}/train.parquet", split="train")',
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
        f"{manifest['seed']}. Train and valid are split by episode (no episode is in both).",
        "A dataset's examples are shared equally between its games and a game's between its",
        "demonstrators by the mixture (largest-remainder counts); opponents cycle through the",
        "training pool. `manifest.json` holds every count. The data is synthetic: no personal",
        "or third-party content.",
        "",
    ]
    header = yaml.safe_dump(card_header(manifest), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n" + "\n".join(body)
