"""What makes CPU training bitwise reproducible across x86 machines, and what it costs (issue 17).

Trains the tiny base model for a few AdamW steps on fixed token batches,
once per setting, each in a fresh process, and prints the weights' sha256
and the wall time side by side.  Two machines give the same bits only if
torch takes the same kernels: ``ATEN_CPU_CAPABILITY`` picks the vectorised
path (a machine with AVX-512 takes another than one with AVX2 only), MKL's
``MKL_CBWR`` pins its code path, and the thread count changes reduction
orders.  A setting whose hash differs from the default's here is one that
separates machines that differ in it.

The timings of the first table are single short runs; the cost of the
stages' pinning is measured apart, default and pinned interleaved over
repeats, for training and for batched decoding (the rollouts' workload).

Run: python benchmarks/reproducibility.py [--model data/models/base] [--steps 20] [--cost-steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from sepo.cpu_kernels import PINNED_CPU_ENVIRONMENT

PINNED = {k: v for k, v in PINNED_CPU_ENVIRONMENT.items() if k != "OMP_WAIT_POLICY"}

SETTINGS = {
    "default (this machine's best ISA, 1 thread)": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=default (no vector ISA)": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "ATEN_CPU_CAPABILITY=avx2 + MKL_CBWR=AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},
    "2 threads": {"THREADS": "2"},
    "the stages' pinning (sepo.cpu_kernels)": PINNED,
    "the stages' pinning, ONEDNN_MAX_CPU_ISA unset": {k: v for k, v in PINNED.items() if k != "ONEDNN_MAX_CPU_ISA"},
    "the stages' pinning, 2 threads": {**PINNED, "THREADS": "2"},
    "the stages' pinning, 2 threads, again": {**PINNED, "THREADS": "2"},
    "the stages' pinning + deterministic algorithms": {**PINNED, "DETERMINISTIC": "1"},
}

CHILD = r"""
import hashlib, json, os, sys, time, torch
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
torch.use_deterministic_algorithms(os.environ.get("DETERMINISTIC") == "1")
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
generator = torch.Generator().manual_seed(0)
batches = [torch.randint(model.config.vocab_size, (2, 256), generator=generator) for _ in range(4)]
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
start = time.perf_counter()
for step in range(int(sys.argv[2])):
    ids = batches[step % len(batches)]
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
seconds = time.perf_counter() - start
digest = hashlib.sha256()
for name, tensor in sorted(model.state_dict().items()):
    digest.update(tensor.detach().contiguous().numpy().tobytes())
prompts = torch.randint(model.config.vocab_size, (8, 64), generator=generator)
start = time.perf_counter()
with torch.no_grad():  # the rollouts' workload: batched decoding, small matrices, overhead-bound
    model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=48, min_new_tokens=48,
                   do_sample=False, pad_token_id=0)
decode_seconds = time.perf_counter() - start
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "sha256": digest.hexdigest(),
                  "seconds": seconds, "decode_seconds": decode_seconds, "loss": float(loss)}))
"""


def run_child(model: str, steps: int, env: dict[str, str]) -> dict:
    """One fresh process under ``env`` (nothing of the pinning inherited): its hash, loss and timings."""
    inherited = {k: v for k, v in os.environ.items() if k not in PINNED}
    full = {**inherited, "OMP_NUM_THREADS": env.get("THREADS", "1"), **env}
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(steps)], env=full,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cost_of_pinning(model: str, steps: int, repeats: int) -> None:
    """Default against the stages' pinning at 1 and 2 threads, interleaved, ``repeats`` times: median ratios."""
    print(f"\nCost of the stages' pinning ({steps} training steps and a 8 x 48-token greedy decode per run, "
          f"default and pinned interleaved, {repeats} repeats, median ratio pinned / default):")
    for threads in ("1", "2"):
        train, decode = [], []
        for _ in range(repeats):
            plain = run_child(model, steps, {"THREADS": threads})
            pinned = run_child(model, steps, {**PINNED, "THREADS": threads})
            train.append(pinned["seconds"] / plain["seconds"])
            decode.append(pinned["decode_seconds"] / plain["decode_seconds"])
        print(f"  {threads} thread(s): training ×{statistics.median(train):.2f} "
              f"(runs {', '.join(f'{r:.2f}' for r in train)}); decoding ×{statistics.median(decode):.2f} "
              f"(runs {', '.join(f'{r:.2f}' for r in decode)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/base")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cost-steps", type=int, default=100, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the timed runs")
    args = parser.parse_args()
    results = {label: run_child(args.model, args.steps, env) for label, env in SETTINGS.items()}
    base = results[next(iter(SETTINGS))]
    print(f"{args.steps} AdamW steps of {args.model} (batch 2 x 256 tokens), each setting in a fresh process")
    for label, r in results.items():
        same = "same bits" if r["sha256"] == base["sha256"] else "DIFFERENT bits"
        print(f"  {label:45s} {r['seconds']:6.1f} s  ×{r['seconds'] / base['seconds']:4.2f}  "
              f"{r['sha256'][:12]}  {same}  {r['capability']:7s} loss {r['loss']:.6f}")
    cost_of_pinning(args.model, args.cost_steps, args.repeats)


if __name__ == "__main__":
    main()
