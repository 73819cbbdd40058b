"""Import one of the repository's scripts (``stages/``, ``scripts/``, ``benchmarks/``) as a module.

They are files run by path, not a package, so a test that calls their functions loads them from
their path; every test does it here, the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_repo_file(relative: str, name: str | None = None) -> ModuleType:
    """The module of ``ROOT / relative`` (e.g. ``scripts/invalid_replies.py``), executed afresh."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
