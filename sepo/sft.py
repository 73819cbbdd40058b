"""Supervised fine-tuning with TRL's ``SFTTrainer`` (SPEC section 6).

The datasets are conversational prompt-completion tables (``sepo.data``):
the prompt is the episode's chat up to a decision, the completion the
demonstrator's reply.  Two regimes, chosen by params:

- ``method: full`` with ``completion_only_loss: false`` (the tiny profile):
  the base is random, so the whole sequence, prompt included, is its
  pre-training; what teaches the answer format is the number of optimizer
  steps (about 1000 at batch 8, cosine schedule run to its end);
- ``method: lora`` with ``completion_only_loss: true`` (Hub models, the
  paper's r 32 / alpha 64): only adapters train, only on the replies.

The corpus takes ``examples_per_domain[game]`` examples of each domain in
the listed datasets' train files (whose rows are already shuffled), so each
domain weighs what the params say whatever the datasets' sizes (the harder
formats, longer and with more legal actions, get more); the trainer
shuffles them with ``sft.seed``.  With the whole-sequence loss an episode's last
example contains all its earlier ones as prefixes, so ``corpus: episodes``
trains on that one alone: every reply once, instead of an 8-round episode's
first rounds eight times over, for several times fewer tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sepo.checkpoints import PREFIX, claim, complete_checkpoints, model_fingerprint
from sepo.config import Params, SFTParams
from sepo.errors import ConfigError
from sepo.io import read_parquet

CONVERSATION_COLUMNS = ("prompt", "completion")

#: SFT params that change neither what is trained nor its log: a crashed run resumes across them
RESUME_INDEPENDENT = frozenset({"save_steps", "save_total_limit", "num_threads"})


def domain_examples(data_dir: str | Path, params: Params, split: str,
                    per_domain: Mapping[str, int] | int | None) -> dict[str, list[dict[str, Any]]]:
    """game -> its first ``per_domain[game]`` (or ``per_domain``) examples of ``split``; all when None.

    A count beyond the file's examples of a domain repeats them in order (an
    extra epoch of that domain alone), so a small, hard domain can weigh more.

    With ``sft.corpus: episodes`` an episode's example is its last decision
    (the longest prompt), whose chat holds every earlier state and reply.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for dataset in params.sft.datasets:
        path = Path(data_dir) / dataset / f"{split}.parquet"
        if not path.is_file():
            raise ConfigError(f"SFT data not found: {path} (run the generate stage first)")
        table = read_parquet(path, columns=["game", "episode_id", *CONVERSATION_COLUMNS])
        games = table.column("game").to_pylist()
        if params.sft.corpus == "episodes":
            episodes = table.column("episode_id").to_pylist()
            lengths = [len(p) for p in table.column("prompt").to_pylist()]
            last: dict[str, int] = {}  # episode -> row of its longest prompt, episodes in file order
            for row, episode in enumerate(episodes):
                if episode not in last or lengths[row] > lengths[last[episode]]:
                    last[episode] = row
            candidates = list(last.values())
        else:
            candidates = list(range(len(games)))
        for game in params.data.datasets[dataset].games:
            wanted = per_domain[game] if isinstance(per_domain, Mapping) else per_domain
            rows = [i for i in candidates if games[i] == game]
            if not rows:
                raise ConfigError(f"sft.datasets: {dataset}/{split} holds no {game} examples")
            if wanted is not None:  # beyond the file's examples, repeat them in order
                rows = (rows * math.ceil(wanted / len(rows)))[:wanted]
            out[game] = table.take(rows).select(list(CONVERSATION_COLUMNS)).to_pylist()
    return out


def sft_examples(data_dir: str | Path, params: Params, split: str) -> list[dict[str, Any]]:
    """The SFT corpus of one split, domains one after another (the trainer shuffles)."""
    per_domain = params.sft.examples_per_domain if split == "train" else params.sft.valid_examples_per_domain
    return [row for rows in domain_examples(data_dir, params, split, per_domain).values() for row in rows]


def corpus_conversations(examples: list[dict[str, Any]]) -> Iterator[list[dict[str, str]]]:
    """Each example as one whole chat (prompt then completion): the tokenizer's training text."""
    for row in examples:
        yield [*row["prompt"], *row["completion"]]


def sft_config(sft: SFTParams, output_dir: str | Path, has_eval: bool):
    """The ``SFTConfig`` for these params; checkpoints go to ``output_dir``."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        seed=sft.seed,
        data_seed=sft.seed,
        learning_rate=sft.learning_rate,
        lr_scheduler_type=sft.lr_scheduler_type,
        warmup_steps=sft.warmup_ratio,  # a float below 1 is a share of the steps
        max_steps=sft.max_steps,
        num_train_epochs=sft.num_train_epochs,
        per_device_train_batch_size=sft.per_device_train_batch_size,
        per_device_eval_batch_size=sft.per_device_train_batch_size,
        gradient_accumulation_steps=sft.gradient_accumulation_steps,
        max_length=sft.max_length,
        completion_only_loss=sft.completion_only_loss,
        bf16=sft.bf16,
        gradient_checkpointing=sft.gradient_checkpointing,
        logging_steps=sft.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=sft.eval_steps,
        save_strategy="steps",
        save_steps=sft.save_steps,
        save_total_limit=sft.save_total_limit,
        report_to="none",
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length",  # batches of similar lengths waste less on padding
    )


def sft_identity(sft: SFTParams, base: str | Path, train: list[dict[str, Any]],
                 valid: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything that makes two SFT runs the same run: params, the base's bytes, the corpus.

    Only a run with this identity resumes from the checkpoints (``sepo.checkpoints.claim``).
    """
    corpus = hashlib.sha256(json.dumps([train, valid], sort_keys=True).encode()).hexdigest()
    return {"sft": sft.model_dump(exclude=set(RESUME_INDEPENDENT)),
            "base_fingerprint": model_fingerprint(base), "corpus": corpus}


def mean_training_loss(history: Sequence[Mapping[str, Any]]) -> float | None:
    """The mean training loss over every optimizer step of the run, from the Trainer's ``log_history``.

    Each logged ``loss`` is the mean over the steps since the previous log, so
    the logs weighted by those step counts give the whole run's mean, which is
    what the Trainer's own ``training_loss`` is for an unbroken run.  After a
    resume the Trainer's value covers only the resumed steps (0.0787 against
    0.2523 unbroken on the tiny profile); ``log_history`` travels in every
    checkpoint, so this one does not change.
    """
    total, steps, last = 0.0, 0, 0
    for entry in history:
        if "loss" in entry and "step" in entry:
            span = entry["step"] - last
            total, steps, last = total + entry["loss"] * span, steps + span, entry["step"]
    return round(total / steps, 4) if steps else None


def train_sft(model, tokenizer, sft: SFTParams, train: list[dict[str, Any]], valid: list[dict[str, Any]],
              out_dir: str | Path, checkpoints: str | Path | None = None,
              identity: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, float]], Any]:
    """Train, save the model (or adapter) and tokenizer to ``out_dir``; (summary, log history, model).

    The final model is written at ``out_dir`` itself so that
    ``from_pretrained(out_dir)`` loads it; nothing else goes there.  Training
    checkpoints (optimizer and RNG state, pickles) go to ``checkpoints``,
    outside the released model: a run killed midway with the same
    ``identity`` (``sft_identity``) resumes from the last complete one.
    Once the model is saved they have served and are removed, so a forced
    rerun trains from scratch.  Without ``checkpoints`` they go to a
    temporary folder (nothing to resume from).
    """
    if checkpoints is None:
        with tempfile.TemporaryDirectory(prefix="sft-checkpoints-") as scratch:
            return train_sft(model, tokenizer, sft, train, valid, out_dir, scratch)
    from datasets import Dataset
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=sft_config(sft, checkpoints, has_eval=bool(valid)),
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(valid) if valid else None,
        processing_class=tokenizer,
        peft_config=sft.lora.peft_config() if sft.method == "lora" else None,
    )
    with trainer.accelerator.main_process_first():
        resumable = identity is not None and claim(checkpoints, identity)
    found = complete_checkpoints(checkpoints) if resumable else []
    last = found[-1][1] if found else None
    if last is not None:
        print(f"sft: resuming from {last} (step {found[-1][0]})", flush=True)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    trainer.save_model(str(out_dir))
    Path(out_dir, "training_args.bin").unlink(missing_ok=True)  # a pickle; the model itself is safetensors
    if trainer.accelerator.is_main_process:
        for path in Path(checkpoints).glob(f"{PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
    history = trainer.state.log_history
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    summary = {
        "method": sft.method,
        "steps": result.global_step,
        "train_examples": len(train),
        "processes": trainer.accelerator.num_processes,  # data-parallel ranks, each its own batch a step
        "train_runtime_s": round(result.metrics["train_runtime"], 1),
        "train_loss": mean_training_loss(history),
        "final_logged_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
        "eval_loss": evals[-1] if evals else None,
        "trainable_parameters": trainable,
    }
    return summary, history, trainer.model
