"""The CPU kernel settings every stage runs under, so two x86 machines train to the same bits.

torch and MKL choose their kernels by the CPU's instruction set: an AVX-512
machine and an AVX2-only one sum in different orders and drift apart within
a few hundred training steps (issue 17).  Pinning ATen's vector path, MKL's
code path (conditional numerical reproducibility) and oneDNN's ISA to AVX2
makes every AVX2-capable x86 machine take the same kernels.
``benchmarks/reproducibility.py`` measures what each setting changes and
costs: on the tiny model about ×1.4–1.65 on a training step and ×1.2 on
batched decoding (README, "Reproducibility across machines").  The thread count, the other
thing that orders reductions, is pinned by params (``*.num_threads``).

Idle OpenMP threads sleep instead of spinning: beside other work, spinning
threads made a 2-thread training step 20 times slower, and sleeping ones
cost nothing when the cores are free.

Each value is a default: a variable already in the environment wins, so a
user can still choose, e.g. ``ATEN_CPU_CAPABILITY=avx512 dvc repro``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

PINNED_CPU_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised kernels
    "MKL_CBWR": "AVX2",  # MKL's BLAS code path (conditional numerical reproducibility)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's kernels, where torch takes them
    "OMP_WAIT_POLICY": "PASSIVE",  # idle threads sleep
}


def pin_cpu_kernels() -> None:
    """Set the pinned kernel environment; must run before torch runs its first operation.

    torch reads ``ATEN_CPU_CAPABILITY`` once, at its first vectorised
    operation, and MKL reads ``MKL_CBWR`` at its first call, so a later
    setting is silently ignored.  If torch has already chosen other kernels
    (a stage called in-process, as the tests do) this warns, once, instead.
    """
    for name, value in PINNED_CPU_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    torch = sys.modules.get("torch")
    if torch is not None:
        wanted = os.environ["ATEN_CPU_CAPABILITY"].upper()
        in_force = torch.backends.cpu.get_cpu_capability()
        if wanted != "DEFAULT" and in_force != wanted and _machine_has(wanted):
            warnings.warn(f"torch already runs {in_force} kernels; pin_cpu_kernels() must run before "
                          f"torch's first operation to pin {wanted}", RuntimeWarning, stacklevel=2)


def _machine_has(capability: str) -> bool:
    """Whether this CPU offers ``capability`` (a machine without AVX2 falls back, and that is fine)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().lower().split()
    except OSError:
        return True
    return {"AVX2": "avx2", "AVX512": "avx512f"}.get(capability, capability.lower()) in flags
