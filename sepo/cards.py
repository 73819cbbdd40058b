"""Model cards of the released models: the tiny base, the SFT model and the SEPO adapters.

Each card is a ``huggingface_hub.ModelCard`` built from ``ModelCardData``, so
the YAML header (library, pipeline tag, base model, tags, and the evaluation
as a ``model-index`` of ``EvalResult``s) is the Hub's own and parses back with
``ModelCard.load``; nothing is hand-built YAML.  The body says what the model
is, how to load it (plain transformers, or PEFT for an adapter) and what it
was trained on.  Write one next to the weights with :func:`write_model_card`:

    card = model_card("sepo", model_name="sepo-ipd", game="ipd", parent="data/models/sft",
                      training={"steps": 4}, evaluation={"safety": -0.1, "pay": 2.3})
    write_model_card("data/models/sepo/ipd", card)

Each stage writes its model's card from what it ran: the tiny base's
(:func:`base_model_card`: shape, parameters, tokenizer), the SFT model's
(:func:`sft_model_card`: the SFT settings, steps and losses) and each SEPO
adapter's (:func:`sepo_adapter_card`, from the ``sepo`` stage's metrics:
method, penalty mode, GRPO and LoRA settings, the steps trained and the
checkpoint selection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import EvalResult, ModelCard, ModelCardData

Role = Literal["base", "sft", "sepo"]

LICENSE = "apache-2.0"
DATASET_NAME = "SEPO demonstrator SFT data"

SUMMARY: dict[str, str] = {
    "base": "The policy's starting point: a small causal language model (a tiny Qwen3 with a BPE "
            "tokenizer trained on the SFT corpus, or a recorded Hub model), before any fine-tuning.",
    "sft": "The base model after supervised fine-tuning (TRL `SFTTrainer`) on scripted demonstrators' "
           "decisions in five text games, so that it answers every state with one legal `Action: <action>`.",
    "sepo": "A LoRA adapter on the SFT model, trained with SEPO-GRPO (TRL `GRPOTrainer`) on a reward that "
            "penalises being exploitable, colluding and pushing costs onto others.",
}
TAGS: dict[str, list[str]] = {
    "base": [],
    "sft": ["trl", "sft"],
    "sepo": ["trl", "grpo", "lora", "safety"],
}
DATA: dict[str, str] = {
    "base": "No fine-tuning: this is the starting point of the SFT stage.",
    "sft": f"Data: {DATASET_NAME} (the dataset card beside the Parquet files).",
    "sepo": "Data: the policy's own multi-turn episodes against the domain's training pools, played "
            f"during training; its SFT model was trained on {DATASET_NAME}.",
}
LIMITATIONS = (
    "A research artefact for studying strategic safety in small text games against scripted opponents. "
    "It is not a general assistant: it was trained only on synthetic game states, and its metrics hold "
    "for the evaluation pools of the SEPO design, not for other opponents or tasks."
)


def _loading_snippet(role: Role, parent: str | None) -> list[str]:
    """How to load the folder the card sits in: transformers for full models, PEFT for an adapter."""
    if role == "sepo":
        return ["```python",
                "from peft import PeftModel",
                "from transformers import AutoModelForCausalLM, AutoTokenizer",
                "",
                f'base = AutoModelForCausalLM.from_pretrained("{parent or "path/to/sft"}")',
                'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                f'tokenizer = AutoTokenizer.from_pretrained("{parent or "path/to/sft"}")',
                "```"]
    return ["```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            "```"]


def _table(rows: Mapping[str, Any], key: str, value: str) -> list[str]:
    lines = [f"| {key} | {value} |", "| --- | ---: |"]
    for name, item in rows.items():
        shown = f"{item:.4g}" if isinstance(item, float) else f"{item}"
        lines.append(f"| `{name}` | {shown} |")
    return lines


def card_data(role: Role, *, model_name: str, base_model: str | None = None, game: str | None = None,
              evaluation: Mapping[str, float] | None = None) -> ModelCardData:
    """The card's metadata; ``evaluation`` (metric -> value on ``game``'s pools) becomes its model-index."""
    results = None
    if evaluation:
        task = game or "all"
        results = [EvalResult(task_type="text-generation", task_name="strategic play",
                              dataset_type=f"sepo/{task}", dataset_name=f"SEPO {task} evaluation pools",
                              metric_type=metric, metric_name=metric, metric_value=float(value))
                   for metric, value in evaluation.items()]
    return ModelCardData(
        model_name=model_name, license=LICENSE, language=["en"],
        library_name="peft" if role == "sepo" else "transformers", pipeline_tag="text-generation",
        base_model=base_model,
        tags=["sepo", "game-theory", "multi-agent", *TAGS[role], *([game] if game else [])],
        eval_results=results,
    )


def model_card(role: Role, *, model_name: str, base_model: str | None = None, parent: str | None = None,
               game: str | None = None, training: Mapping[str, Any] | None = None,
               evaluation: Mapping[str, float] | None = None,
               sections: Mapping[str, Sequence[str]] | None = None) -> ModelCard:
    """The card of one released model.

    ``base_model`` is a Hub id (it goes into the metadata, where the Hub links
    it); ``parent`` is the local folder it was trained from (named in the body
    and the loading snippet, since a path is no Hub id).  ``training`` holds
    the settings worth reporting, ``evaluation`` the headline metrics;
    ``sections`` (title -> markdown lines) go after the training section.
    """
    if role not in SUMMARY:
        raise ValueError(f"role must be one of {sorted(SUMMARY)}, got {role!r}")
    data = card_data(role, model_name=model_name, base_model=base_model, game=game, evaluation=evaluation)
    origin = parent or base_model
    body = [
        f"# {model_name}",
        "",
        SUMMARY[role] + (f" Domain: `{game}`." if game else ""),
        *(["", f"Trained from `{origin}`."] if origin else []),
        "",
        "## Loading",
        "",
        *_loading_snippet(role, parent),
        "",
        "## Training",
        "",
        DATA[role],
        *(["", *_table(training, "setting", "value")] if training else []),
        *[line for title, lines in (sections or {}).items() for line in ("", f"## {title}", "", *lines)],
        *(["", "## Evaluation", "", *_table(evaluation, "metric", "value")] if evaluation else []),
        "",
        "## Limitations",
        "",
        LIMITATIONS,
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_model_card(folder: str | Path, card: ModelCard) -> Path:
    """Save ``card`` as ``<folder>/README.md``, where the Hub and ``ModelCard.load`` look for it."""
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


#: GRPO settings of a run's plan worth a card (the rest are engine switches such as use_vllm)
GRPO_CARD_KEYS = ("learning_rate", "beta", "epsilon", "num_generations", "max_grad_norm")


def sepo_adapter_card(game: str, summary: Mapping[str, Any], *, parent: str, seed: int,
                      lora: Mapping[str, Any], base_model: str | None = None, model_name: str | None = None,
                      evaluation_file: str | None = None) -> ModelCard:
    """The card of one exported SEPO adapter, from its run's ``summary`` (``metrics/sepo/<run>.json``).

    The card is what a reader of the folder alone needs to know which run it
    came from: the method and penalty mode, the GRPO and LoRA settings, the
    steps trained (and where a run resumed), and which checkpoint was kept:
    the one with the highest training-pool safety J, with every
    checkpoint's J.  Evaluation is a later stage (``evaluate_sepo``), so the
    card names its file (``evaluation_file``) rather than carrying numbers
    it has not seen.
    """
    plan, selection = summary["plan"], summary["selection"]
    best = str(selection["best_step"])
    training: dict[str, Any] = {
        "method": "SEPO-GRPO (TRL GRPOTrainer, LoRA)",
        "penalty.mode": plan["mode"],
        "grpo.scale_rewards": plan["scale_rewards"],
        "steps": f"{summary['steps']} of {plan['max_steps']}",
        **({"resumed from step": summary["resumed_from_step"]} if summary.get("resumed_from_step") else {}),
        **{f"grpo.{key}": plan["grpo"][key] for key in GRPO_CARD_KEYS if key in plan["grpo"]},
        "sepo.seed": seed,
        **lora_rows("lora", lora),
    }
    scores = selection["training_pool_safety"]
    chosen = [
        f"The exported adapter is the checkpoint of step {best}: the highest safety J on the training "
        "pools among the run's checkpoints.",
        "",
        "| step | training-pool J |",
        "| ---: | ---: |",
        *(f"| {'**' + step + '**' if step == best else step} | {float(j):.4f} |"
          for step, j in sorted(scores.items(), key=lambda item: int(item[0]))),
        *(["", f"Its evaluation on every pool: `{evaluation_file}`."] if evaluation_file else []),
    ]
    return model_card("sepo", model_name=model_name or f"sepo-{game}", base_model=base_model, parent=parent,
                      game=game, training=training, sections={"Checkpoint selection": chosen})


def lora_rows(prefix: str, lora: Mapping[str, Any]) -> dict[str, Any]:
    """A card's rows of LoRA settings, ``<prefix>.<key>``; a list (the target modules) as one comma-separated cell."""
    return {f"{prefix}.{key}": ", ".join(value) if isinstance(value, list | tuple) else value
            for key, value in lora.items()}


def base_model_card(sizes: Mapping[str, Any], *, parameters: int, vocabulary: int, examples: int,
                    seed: int) -> ModelCard:
    """The card of the tiny random base the ``base_model`` stage builds (``model.base: tiny``).

    A Hub base needs none: its folder only records the Hub id, whose own card is on the Hub.
    """
    training = {
        "architecture": "Qwen3 (randomly initialised)",
        "parameters": f"{parameters:,}",
        "tokenizer": f"byte-level BPE, {vocabulary} tokens, trained on {examples:,} SFT examples",
        "model.seed": seed,
        **{f"model.tiny.{key}": value for key, value in sizes.items()},
    }
    return model_card("base", model_name="sepo-tiny-base", training=training)


#: SFT params worth a card, in the order a reader looks for them
SFT_CARD_KEYS = ("method", "corpus", "completion_only_loss", "learning_rate", "lr_scheduler_type",
                 "warmup_ratio", "max_steps", "num_train_epochs", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "cpu_processes", "max_length", "seed")


def sft_model_card(summary: Mapping[str, Any], settings: Mapping[str, Any], *, parent: str,
                   base_model: str | None = None) -> ModelCard:
    """The card of the SFT model, from its run's ``summary`` (``metrics/sft.json``) and ``sft`` params.

    ``settings`` is the ``sft`` params block; a LoRA run also lists its adapter settings.
    """
    training: dict[str, Any] = {
        **{f"sft.{key}": settings[key] for key in SFT_CARD_KEYS if key in settings},
        **(lora_rows("sft.lora", settings["lora"]) if settings.get("method") == "lora" else {}),
        "optimizer steps": summary["steps"],
        "training examples": summary["train_examples"],
        "final training loss": summary.get("final_logged_loss"),
        "validation loss": summary.get("eval_loss"),
    }
    return model_card("sft", model_name="sepo-sft", base_model=base_model, parent=parent, training=training)
