"""The persistent checkpoint folder of a run: which checkpoints are complete, and whose they are.

The folder survives ``dvc repro`` (``persist: true``) so that a crashed run
resumes.  Two guards make that safe:

- a checkpoint counts only once its ``trainer_state.json`` exists, the last
  file the Trainer writes, so a run killed while saving resumes from the
  checkpoint before;
- ``run.json`` holds a fingerprint of everything that defines the run
  (domain, penalty mode, GRPO and LoRA settings, seeds, the starting model);
  when it changes (``dvc exp run -S penalty.mode=none``) the old
  checkpoints belong to another run and are removed instead of resumed.
  Budgets (``max_steps``, ``save_steps``) are left out: more steps continue
  the same run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from sepo.io import write_json_atomic

RUN_FILE = "run.json"
PREFIX = "checkpoint-"


def complete_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint in ``folder``, by step."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{PREFIX}*"):
        step = path.name.removeprefix(PREFIX)
        if step.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(step), path))
    return sorted(found)


def model_fingerprint(path: str | Path) -> str:
    """A hash of a model folder's small files and its weight files' names and sizes (or of a Hub id)."""
    path = Path(path)
    digest = hashlib.sha256()
    if not path.is_dir():
        digest.update(str(path).encode())
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        size = file.stat().st_size
        digest.update(file.read_bytes() if size < 1 << 20 else str(size).encode())
    return digest.hexdigest()


def claim(folder: str | Path, identity: dict[str, Any]) -> bool:
    """Make ``folder`` this run's: True when its checkpoints (if any) may be resumed.

    Checkpoints of a different run (another fingerprint, or none recorded)
    are deleted first.
    """
    folder = Path(folder)
    run_file = folder / RUN_FILE
    identity = json.loads(json.dumps(identity))  # as it reads back from the file
    if run_file.is_file() and json.loads(run_file.read_text()) == identity:
        return True
    if folder.is_dir():
        for path in folder.glob(f"{PREFIX}*"):
            shutil.rmtree(path)
    write_json_atomic(run_file, identity)
    return False
