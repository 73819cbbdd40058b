"""The checkpoint folder of a training run (SFT or SEPO): which checkpoints are complete, and whose.

The folder lies outside the stage's released output (``data/checkpoints/``,
never pushed) and survives ``dvc repro`` so that a crashed run resumes.  Two
guards make that safe:

- a checkpoint counts only once its ``trainer_state.json`` exists, the last
  file the Trainer writes, so a run killed while saving resumes from the
  checkpoint before;
- ``run.json`` holds a fingerprint of everything that defines the run
  (for SEPO: domain, penalty mode, GRPO and LoRA settings, seeds, the
  starting model's content hash; for SFT: ``sepo.sft.sft_identity``); when
  it changes (``dvc exp run -S penalty.mode=none``) the old checkpoints
  belong to another run and are moved aside to ``stale-<hash of the old
  run.json>/``, with a message, instead of being resumed or deleted (delete
  that folder by hand once it is not wanted).  SEPO leaves its budgets
  (``max_steps``, ``save_steps``) out: more steps continue the same run,
  fewer select among the checkpoints within the new budget
  (``within_budget``).  SFT keeps ``max_steps`` in, since its learning-rate
  schedule spans the whole run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sepo.io import content_hash, write_json_atomic

RUN_FILE = "run.json"
PREFIX = "checkpoint-"
STALE_PREFIX = "stale-"


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


def within_budget(found: list[tuple[int, Path]], max_steps: int) -> list[tuple[int, Path]]:
    """The checkpoints a run of ``max_steps`` may use: those at or below its budget."""
    return [(step, path) for step, path in found if step <= max_steps]


#: files of a model folder that describe the model rather than make it: its Hub card
MODEL_DESCRIPTIONS = frozenset({"README.md"})


def model_fingerprint(path: str | Path) -> str:
    """A content hash of a model folder's own files (weights included, byte for byte), or of a Hub id.

    The model card is left out: rewording a card is not a new model, and
    should neither strand a run's checkpoints nor refuse an adapter's base.
    """
    path = Path(path)
    if not path.is_dir():
        return hashlib.sha256(str(path).encode()).hexdigest()
    return content_hash(path, recursive=False, skip=MODEL_DESCRIPTIONS)


def _read_identity(run_file: Path) -> Any:
    try:
        return json.loads(run_file.read_text())
    except ValueError:  # a torn or hand-edited run.json belongs to no run
        return None


def claim(folder: str | Path, identity: dict[str, Any]) -> bool:
    """Make ``folder`` this run's: True when its checkpoints (if any) may be resumed.

    Checkpoints of a different run (another identity, or none recorded) are
    moved into ``stale-<hash>/`` beside them first, with a message.
    """
    folder = Path(folder)
    run_file = folder / RUN_FILE
    identity = json.loads(json.dumps(identity))  # as it reads back from the file
    old = _read_identity(run_file) if run_file.is_file() else None
    if old == identity:
        return True
    checkpoints = sorted(folder.glob(f"{PREFIX}*")) if folder.is_dir() else []
    if checkpoints:
        recorded = run_file.read_bytes() if run_file.is_file() else b"no run.json"
        name = f"{STALE_PREFIX}{hashlib.sha256(recorded).hexdigest()[:12]}"
        stale, copies = folder / name, 1
        while stale.exists():  # the same old run set aside before: keep both
            stale, copies = folder / f"{name}-{copies}", copies + 1
        stale.mkdir()
        for path in checkpoints:
            path.rename(stale / path.name)
        if run_file.is_file():
            run_file.rename(stale / RUN_FILE)
        changed = sorted(k for k in identity if not isinstance(old, dict) or old.get(k) != identity[k])
        print(f"sepo: {folder} held checkpoints of another run (changed: {', '.join(changed)}); moved "
              f"{len(checkpoints)} to {stale} (delete it when not needed)", flush=True)
    write_json_atomic(run_file, identity)
    return False
