"""Lockstep rollout speed of two source trees, side by side: did a change slow the plain decoder?

Issue 15 split the decode loop out of ``sepo/policies/model.py`` and made
it handle any transformers cache; plain full-attention decoders must keep
their speed.  This runs ``benchmarks/rollout.py``'s lockstep arm (the same
mixed-domain episodes, every domain's training pool) once per tree per
repeat, alternating trees so that machine noise hits both alike, each run in
a fresh process whose ``sepo`` is imported from that tree with that tree's
``params.yaml``.  Both trees load the same ``--model``.  Greedy decoding by
default, so both trees play the same episodes when their decoders agree
(the replies' hash is printed to show whether they do).

    git worktree add /tmp/before <commit>
    python benchmarks/rollout_versions.py /tmp/before . --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from source_trees import alternate_trees, run_worker, two_trees_parser


def worker(model: str, per_domain: int, threads: int, sampled: bool) -> None:
    """One lockstep arm in this process (``sepo`` from ``PYTHONPATH``); prints one JSON line."""
    import importlib.util

    import torch

    from sepo.config import load_params
    from sepo.policies.model import ModelPolicy, load_model_policy
    from sepo.rollout import play_episodes

    # the episodes of benchmarks/rollout.py, from this file's tree, so both trees play the same ones
    spec = importlib.util.spec_from_file_location("rollout_benchmark", Path(__file__).with_name("rollout.py"))
    rollout_benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rollout_benchmark)
    torch.set_num_threads(threads)
    params = load_params("params.yaml")
    specs = rollout_benchmark.mixed_specs(params, per_domain)
    loaded = load_model_policy(model, params, greedy=not sampled)

    def fresh() -> ModelPolicy:
        return ModelPolicy(loaded.model, loaded.tokenizer, loaded.sampling, seed=params.generation.seed)

    play_episodes(specs[:1], fresh())  # warm-up
    start = time.perf_counter()
    played = play_episodes(specs, fresh(), batch_size=params.generation.batch_size)
    seconds = time.perf_counter() - start
    replies = [r.text for p in played for r in p.replies]
    print(json.dumps({"decisions": len(replies), "seconds": seconds,
                      "replies_sha256": hashlib.sha256("\n".join(replies).encode()).hexdigest()[:12]}))


def run_tree(tree: Path, args: argparse.Namespace) -> dict:
    """The worker in a fresh process, importing ``sepo`` from ``tree``."""
    worker_args = ["--model", str(Path(args.model).resolve()), "--episodes-per-domain", str(args.episodes_per_domain),
                   "--threads", str(args.threads)] + (["--sampled"] if args.sampled else [])
    return run_worker(__file__, tree, worker_args)


def main() -> None:
    parser = two_trees_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/sft")
    parser.add_argument("--episodes-per-domain", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sampled", action="store_true", help="the params' sampling instead of greedy")
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.episodes_per_domain, args.threads, args.sampled)
        return
    if len(args.trees) != 2:
        parser.error("give two source trees: before and after")
    summary = alternate_trees(
        args.trees, args.repeats, lambda tree: run_tree(tree, args),
        measure=lambda r: r["decisions"] / r["seconds"],
        describe=lambda r: (f"{r['decisions'] / r['seconds']:7.2f} decisions/s ({r['decisions']} decisions, "
                            f"{r['seconds']:.1f} s, replies {r['replies_sha256']})"))
    print(f"decisions/s, {summary}")

if __name__ == "__main__":
    main()
