"""What a SEPO-GRPO step costs in two source trees, side by side: did a change make the step cheaper?

A ``sepo@<game>`` stage is ``sepo.max_steps`` of these steps, and the
ablation fourteen runs of them, so the step is most of the pipeline after
SFT.  This trains each tree's own ``sepo.training.run.build_trainer`` from
the same ``--model`` (the committed SFT policy) for ``--steps`` steps of
``--game`` under the stages' kernel pinning and the params' thread count,
once per tree per repeat, alternating trees so that machine noise hits both
alike, each run in a fresh process whose ``sepo`` is imported from that
tree with that tree's ``params.yaml``.  It prints the mean step time after
the first (untimed) step, the rollout's share of it, and the final adapter's
sha256, which says whether the two trees trained the same bits.

    git worktree add /tmp/before <commit>
    python benchmarks/sepo_step.py /tmp/before . --game ipd --steps 8 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
from pathlib import Path

from source_trees import alternate_trees, run_worker, two_trees_parser


def worker(model: str, game: str, steps: int) -> None:
    """``steps`` SEPO steps in this process (``sepo`` from ``PYTHONPATH``); prints one JSON line."""
    from sepo.cpu_kernels import pin_cpu_kernels

    pin_cpu_kernels()
    import torch

    from sepo.config import load_params
    from sepo.training.run import RunPlan, build_trainer, load_policy_model

    params = load_params("params.yaml")
    plan = RunPlan.from_params(params, game, max_steps=steps)
    model, tokenizer = load_policy_model(params, model)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(params, plan, model, tokenizer, scratch)
        trainer.args.save_strategy = "no"
        trainer.train()
    rows = [entry for entry in trainer.state.log_history if "step_time" in entry][1:]
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer.model.state_dict().items()):
        if "lora_" in name:
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().numpy().tobytes())
    print(json.dumps({"step_seconds": statistics.mean(r["step_time"] for r in rows),
                      "rollout_seconds": statistics.mean(r["rollout_time"] for r in rows),
                      "threads": torch.get_num_threads(), "adapter_sha256": digest.hexdigest()[:12]}))


def run_tree(tree: Path, args: argparse.Namespace) -> dict:
    """The worker in a fresh process, importing ``sepo`` from ``tree``."""
    return run_worker(__file__, tree, ["--model", str(Path(args.model).resolve()), "--game", args.game,
                                       "--steps", str(args.steps)], TRL_EXPERIMENTAL_SILENCE="1")


def main() -> None:
    parser = two_trees_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/sft")
    parser.add_argument("--game", default="ipd")
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first untimed)")
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.game, args.steps)
        return
    if len(args.trees) != 2:
        parser.error("give two source trees: before and after")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is untimed)")
    summary = alternate_trees(
        args.trees, args.repeats, lambda tree: run_tree(tree, args), measure=lambda r: r["step_seconds"],
        describe=lambda r: (f"{r['step_seconds']:.3f} s/step (rollout {r['rollout_seconds']:.3f} s), "
                            f"{r['threads']} thread(s), adapter {r['adapter_sha256']}"))
    print(f"{args.game}, {args.steps - 1} timed steps, s/step {summary}")

if __name__ == "__main__":
    main()
