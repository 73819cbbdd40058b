"""Which model a SEPO adapter belongs to, recorded so that it loads anywhere and only onto that model.

PEFT records an adapter's base as the path the training process saw
(``data/models/sft``): relative to the working directory, so from another
directory it fails, and from another clone it silently loads onto that
clone's SFT model.  The export writes ``sepo_base.json`` beside the adapter:
the base's path relative to the adapter folder and the base's content hash
(``sepo.checkpoints.model_fingerprint``: its own files, the card left out).  Loading resolves the base from
the adapter's folder and refuses, in one line, a base whose bytes differ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sepo.checkpoints import model_fingerprint
from sepo.errors import ConfigError
from sepo.io import write_json_atomic

BASE_FILE = "sepo_base.json"


def base_fingerprint(base: str | Path) -> str | None:
    """The content hash of a local base model folder's files; None for a Hub id."""
    return model_fingerprint(base) if Path(base).is_dir() else None


def record_adapter_base(adapter: str | Path, base: str | Path) -> None:
    """Write ``sepo_base.json`` into ``adapter``: where its base is relative to it, and the base's hash."""
    adapter, local = Path(adapter), Path(base).is_dir()
    where = os.path.relpath(Path(base).resolve(), adapter.resolve()) if local else str(base)
    write_json_atomic(adapter / BASE_FILE, {"base": where, "relative_to_adapter": local,
                                           "base_content_hash": base_fingerprint(base),
                                           "base_as_trained": str(base)})


def adapter_base(adapter: str | Path) -> str | None:
    """The base model path of a SEPO adapter folder, checked against its hash; None if it records none."""
    record_path = Path(adapter) / BASE_FILE
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        where, relative, expected = record["base"], record["relative_to_adapter"], record["base_content_hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{record_path}: not a base record ({type(exc).__name__}: {exc})") from None
    if not relative:
        return where
    base = (Path(adapter) / where).resolve()
    if not base.is_dir():
        raise ConfigError(f"adapter {adapter} was trained on the model at {where} relative to it "
                          f"({record['base_as_trained']} when trained); {base} does not exist")
    actual = base_fingerprint(base)
    if actual != expected:
        raise ConfigError(f"adapter {adapter} was trained on a different model than {base} (content hash "
                          f"{expected[:12]}, found {actual[:12]}); retrain it (dvc repro) or restore that model")
    return str(base)
