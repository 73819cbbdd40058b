"""The skeleton every DVC stage script shares: its parser, its clock and its one-line input errors.

A stage reads and checks all of its inputs before it writes anything.  A bad
input is one line on stderr that names the stage, and exit status 2, so
``dvc repro`` stops with every earlier output intact; only then does the
stage work.  The clock starts when the arguments are parsed, and
``wall_time_s`` is what a stage writes into its metrics file (issue 16: every
stage reports its own wall time).  Constructing a ``Stage`` pins the CPU
kernels (``sepo.cpu_kernels``) before the stage imports torch, so every stage
computes the same bits on any AVX2 x86 machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from sepo.cpu_kernels import pin_cpu_kernels


class Stage:
    """One invocation of a stage script (``Stage("sft", __doc__)``)."""

    def __init__(self, name: str, doc: str | None) -> None:
        pin_cpu_kernels()
        self.name = name
        first_line = (doc or name).strip().splitlines()[0]
        self.parser = argparse.ArgumentParser(description=first_line)
        self.parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        self._start = time.perf_counter()

    def parse(self, argv: Sequence[str] | None) -> argparse.Namespace:
        """The parsed arguments; the stage's clock starts here."""
        args = self.parser.parse_args(argv)
        self._start = time.perf_counter()
        return args

    def input_error(self, error: Exception) -> int:
        """Report a bad input as one line (``<stage>: error: ...``); the exit status to return (2)."""
        print(f"{self.name}: error: {error}", file=sys.stderr)
        return 2

    def wall_time_s(self) -> float:
        """Seconds since the arguments were parsed, to 0.1 s."""
        return round(time.perf_counter() - self._start, 1)
