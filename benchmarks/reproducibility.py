"""What makes CPU training bitwise reproducible across x86 machines, and what it costs (issue 17).

Trains the tiny base model for a few AdamW steps on fixed token batches,
once per setting, each in a fresh process, and prints the weights' sha256
and the wall time side by side.  Two machines give the same bits only if
torch takes the same kernels: ``ATEN_CPU_CAPABILITY`` picks the vectorised
path (a machine with AVX-512 takes another than one with AVX2 only), MKL's
``MKL_CBWR`` pins its code path, and the thread count changes reduction
orders.  A setting whose hash differs from the default's here is one that
separates machines that differ in it.

Run: python benchmarks/reproducibility.py [--model data/models/base] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

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
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "sha256": digest.hexdigest(),
                  "seconds": seconds, "loss": float(loss)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/models/base")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    results = {}
    for label, env in SETTINGS.items():
        inherited = {k: v for k, v in os.environ.items() if k not in PINNED}
        full = {**inherited, "OMP_NUM_THREADS": env.get("THREADS", "1"), **env}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, args.model, str(args.steps)], env=full,
                              capture_output=True, text=True, check=True)
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        results[label]["process_seconds"] = time.perf_counter() - started
    base = results[next(iter(SETTINGS))]
    print(f"{args.steps} AdamW steps of {args.model} (batch 2 x 256 tokens), each setting in a fresh process")
    for label, r in results.items():
        same = "same bits" if r["sha256"] == base["sha256"] else "DIFFERENT bits"
        print(f"  {label:45s} {r['seconds']:6.1f} s  ×{r['seconds'] / base['seconds']:4.2f}  "
              f"{r['sha256'][:12]}  {same}  {r['capability']:7s} loss {r['loss']:.6f}")


if __name__ == "__main__":
    main()
