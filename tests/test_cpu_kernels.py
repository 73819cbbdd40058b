"""Every stage pins torch's and MKL's kernels to AVX2 before torch runs (issue 17: the same bits on
any AVX2 x86 machine).  Each check runs in a fresh interpreter, since torch fixes its kernels once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sepo.cpu_kernels import PINNED_CPU_ENVIRONMENT, _machine_has

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PINNED_CPU_ENVIRONMENT}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.skipif(not _machine_has("AVX2"), reason="the CPU has no AVX2 to pin to")
def test_constructing_a_stage_pins_the_kernels_before_torch_runs():
    done = run_fresh(
        "import json, os\n"
        "from sepo.stage import Stage\n"
        "Stage('demo', 'Demo.')\n"
        "import torch\n"
        "torch.ones(8).sum()\n"
        "print(json.dumps({'capability': torch.backends.cpu.get_cpu_capability(),\n"
        "                  'env': {k: os.environ[k] for k in " + repr(list(PINNED_CPU_ENVIRONMENT)) + "}}))")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["capability"] == "AVX2"
    assert seen["env"] == PINNED_CPU_ENVIRONMENT


def test_a_users_own_setting_wins():
    done = run_fresh("import os\nfrom sepo.cpu_kernels import pin_cpu_kernels\npin_cpu_kernels()\n"
                     "print(os.environ['ATEN_CPU_CAPABILITY'], os.environ['MKL_CBWR'])",
                     ATEN_CPU_CAPABILITY="default")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["default", "AVX2"]


@pytest.mark.skipif(not _machine_has("AVX512"), reason="needs a CPU whose best kernels are not AVX2")
def test_pinning_after_torch_chose_its_kernels_is_warned_not_silent():
    done = run_fresh("import torch\ntorch.ones(8).sum()\nfrom sepo.cpu_kernels import pin_cpu_kernels\n"
                     "pin_cpu_kernels()")
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" in done.stderr and "must run before torch's first operation" in done.stderr


def test_every_stage_script_builds_its_stage_before_importing_torch():
    """The pin only holds if no stage imports torch at module level, before ``Stage(...)`` runs."""
    for script in sorted((ROOT / "stages").glob("*.py")):
        done = run_fresh("import importlib.util, sys\n"
                         f"spec = importlib.util.spec_from_file_location('stage', {str(script)!r})\n"
                         "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
                         "print('torch' in sys.modules)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == "False", f"{script.name} imports torch at module level"
