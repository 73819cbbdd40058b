"""Benchmarks refuse settings they cannot measure in one line (exit 2), before launching anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("steps", ["0", "6"])
def test_sft_step_refuses_too_few_steps_to_time_one_step(steps):
    done = subprocess.run([sys.executable, "benchmarks/sft_step.py", "--steps", steps], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--steps must be at least 7" in lines[0] and f"got {steps}" in lines[0]
    assert done.stdout == ""
