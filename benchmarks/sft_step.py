"""What an SFT optimizer step costs on CPU, and what each candidate saving buys (issue 16, item 1).

The ``sft`` stage is the longest single stage of the tiny default; before
adding steps the step has to get cheaper.  This trains the committed base
(``data/models/base``) on the stage's own corpus and settings
(``params.yaml``: ``sft.cpu_processes`` ranks of ``sft.num_threads`` threads)
for a few dozen steps per variant, each in a fresh launch under the stages'
kernel pinning, and prints the time per step and per example side by side
with their ratios to the stage's settings, the median over interleaved
repeats.  It also prints each variant's loss at the first steps, so a
variant that changes what is trained (not only how fast) shows:

- ``padding_free``: TRL flattens a batch into one row without padding; the
  attention stays within each example through the position ids
  (transformers builds the block mask from them).  TRL then cannot
  truncate, so ``max_length`` is off: the longest example (printed) is
  within the stage's ``max_length`` anyway;
- ``random order``: the stage's ``group_by_length`` sampler off, so batches
  mix lengths and pad more (what the sampler buys);
- ``1 process × 2 threads``: the stage as it ran before ``sft.cpu_processes``
  (one process of the per-device batch; the second thread bought about 10%);
- ``torch.compile`` (``--compile``): the Trainer's ``torch_compile`` (inductor,
  needs a C++ compiler; its compile time is excluded from the step time);
- ``N processes × 1 thread`` (``--processes N``): N gloo ranks under
  ``accelerate launch`` on the CPU (``sepo.distributed``), each the per-device
  batch, so a step trains N times the examples;
- ``1 process × 2 threads, batch N`` (``--batch-sizes N ...``): one process
  of ``per_device_train_batch_size`` N, the same examples a step as N/2
  ranks.  A step of this model is overhead-bound, so a larger batch may
  cost less per example; the ``ms/example`` column compares those (fewer
  steps then cover the same epochs; whether copying still forms in them is
  a training question this cannot answer).

Run: python benchmarks/sft_step.py [--steps 60] [--repeats 2] [--compile] [--batch-sizes 4 8] [--processes 2]
     [--only-stage]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from sepo.config import load_params
from sepo.distributed import cpu_launch_command, cpu_launch_environment, free_port

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "the stage's settings": {},
    "padding_free": {"padding_free": True, "max_length": None},
    "random order (no group_by_length)": {"train_sampling_strategy": "random"},
    "1 process x 2 threads": {"processes": 1, "threads": 2},
}
COMPILE = {"torch.compile (inductor)": {"torch_compile": True}}

#: steps before the timed window: allocator warm-up, and compilation under torch.compile
WARMUP_STEPS = 5


def child(variant: dict, steps: int, params_path: str, model_path: str, data_path: str) -> dict:
    """Train ``steps`` steps under ``variant`` in this process; seconds per step after the warm-up, losses."""
    from sepo.cpu_kernels import pin_cpu_kernels

    pin_cpu_kernels()
    import tempfile
    import time

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from sepo.config import load_params
    from sepo.models.loading import load_model_and_tokenizer
    from sepo.sft import sft_config, sft_examples

    params = load_params(params_path)
    sft = params.sft.model_copy(update={"max_steps": steps, "logging_steps": 1})
    torch.set_num_threads(variant.get("threads") or sft.num_threads or torch.get_num_threads())
    train = sft_examples(data_path, params, "train")
    model, tokenizer = load_model_and_tokenizer(model_path)
    stamps: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as scratch:
        config = sft_config(sft, scratch, has_eval=False)
        config.save_strategy = "no"
        for key in ("padding_free", "max_length", "train_sampling_strategy", "torch_compile",
                    "per_device_train_batch_size"):
            if key in variant:
                setattr(config, key, variant[key])
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(train),
                             processing_class=tokenizer, callbacks=[StepTimes()])
        trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    timed = stamps[WARMUP_STEPS:]
    return {"seconds_per_step": (timed[-1] - timed[0]) / (len(timed) - 1), "losses": losses[:3],
            "batch_size": config.per_device_train_batch_size * trainer.accelerator.num_processes,
            "threads": torch.get_num_threads(),
            "longest": max(len(ids) for ids in trainer.train_dataset["input_ids"])}


def run(variant: dict, args: argparse.Namespace, sft) -> dict:
    """One fresh launch for ``variant`` (one process, or ``processes`` CPU ranks) on the ``sft`` params; its result."""
    processes = variant.get("processes", sft.cpu_processes)
    threads = variant.get("threads", sft.num_threads)
    child_args = ["--child", json.dumps({**variant, "threads": threads}), "--steps", str(args.steps),
                  "--params", args.params, "--model", args.model, "--data", args.data]
    if processes > 1:
        command = cpu_launch_command(Path(__file__).resolve(), child_args, processes, free_port())
        env = cpu_launch_environment(threads)
    else:
        command, env = [sys.executable, __file__, *child_args], dict(os.environ)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help=f"steps per run ({WARMUP_STEPS} untimed)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every variant")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--processes", type=int, nargs="*", default=[],
                        help="also time the stage's batch in this many CPU processes of one thread (DDP)")
    parser.add_argument("--only-stage", action="store_true",
                        help="skip the older candidates (padding-free, random order, one process)")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[],
                        help="also time these per-device batch sizes (compare ms/example)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="data/models/base")
    parser.add_argument("--data", default="data/sft")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < WARMUP_STEPS + 2:  # a step's time is the gap between two stamps after the warm-up
        print(f"sft_step: --steps must be at least {WARMUP_STEPS + 2} ({WARMUP_STEPS} warm-up steps, then two "
              f"timed ones), got {args.steps}", file=sys.stderr)
        sys.exit(2)
    if args.child is not None:
        result = child(json.loads(args.child), args.steps, args.params, args.model, args.data)
        if int(os.environ.get("RANK", "0")) == 0:  # one line per launch, from rank 0
            print(json.dumps(result))
        return
    old = {"the stage's settings": {}} if args.only_stage else VARIANTS
    variants = {**old, **(COMPILE if args.compile else {}),
                **{f"1 process x 2 threads, batch {n}": {"processes": 1, "threads": 2,
                                                          "per_device_train_batch_size": n}
                   for n in args.batch_sizes},
                **{f"{n} processes x 1 thread": {"processes": n, "threads": 1} for n in args.processes}}
    sft = load_params(ROOT / args.params).sft
    results: dict[str, list[dict]] = {label: [] for label in variants}
    for _ in range(args.repeats):  # interleaved: a slow spell of the machine touches every variant
        for label, variant in variants.items():
            results[label].append(run(variant, args, sft))
    base = statistics.median(r["seconds_per_step"] for r in results["the stage's settings"])
    base_per_example = base / results["the stage's settings"][0]["batch_size"]
    print(f"SFT steps of {args.model} on the stage's corpus ({args.params}), {args.steps} steps per run, "
          f"the first {WARMUP_STEPS} untimed, {args.repeats} interleaved repeats, median:")
    for label, runs in results.items():
        failed = [r["error"] for r in runs if "error" in r]
        if failed:
            print(f"  {label:36s} failed: {failed[0]}")
            continue
        seconds = statistics.median(r["seconds_per_step"] for r in runs)
        per_example = seconds / runs[0]["batch_size"]
        losses = ", ".join(f"{loss:.4f}" for loss in runs[0]["losses"])
        print(f"  {label:36s} {1000 * seconds:7.1f} ms/step  ×{seconds / base:4.2f} of the stage's  "
              f"{1000 * per_example:6.1f} ms/example (×{per_example / base_per_example:4.2f})  "
              f"{runs[0]['threads']} thread(s)  losses at steps 1-3: {losses}  longest {runs[0]['longest']}")


if __name__ == "__main__":
    main()
