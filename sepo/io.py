"""Files in and out: atomic writes (a crash never leaves a half-written file), checked reads, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``.

    Readers see either the old file or the new one, never a torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make released files private to their writer
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_folder(path: str | Path) -> Path:
    """The hidden sibling a folder output is built in before ``replace_folder`` moves it into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def replace_folder(built: str | Path, path: str | Path) -> None:
    """Move the finished folder ``built`` to ``path``, replacing what was there.

    The old folder is renamed aside first and removed last, so at every
    moment a complete folder (old or new) exists: a run that fails before
    this point leaves the previous output as it was.
    """
    import shutil

    built, path = Path(built), Path(path)
    aside = path.with_name(f".{path.name}.old")
    shutil.rmtree(aside, ignore_errors=True)
    if path.exists():
        path.rename(aside)
    built.rename(path)
    shutil.rmtree(aside, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text, written atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Pretty, key-sorted JSON, so identical results give identical bytes."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_parquet(path: str | Path, columns: Sequence[str] | None = None, *,
                 required: Sequence[str] = ()):
    """A Parquet file as a pyarrow Table; a missing, unreadable or incomplete file is one ``ConfigError`` line.

    ``required`` columns are checked by name first, so a dropped column is
    reported as missing rather than as a cascade of failed checks on it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sepo.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        schema = pq.read_schema(path)
        missing = [c for c in (*required, *(columns or ())) if c not in schema.names]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(dict.fromkeys(missing))}; "
                              f"the file has {', '.join(schema.names) or 'none'}")
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a readable Parquet file ({first}); regenerate it "
                          "(dvc repro generate, or dvc checkout)") from None


def content_hash(path: str | Path, *, recursive: bool = True, skip: frozenset[str] = frozenset()) -> str:
    """SHA-256 over a file's bytes, or over a folder's relative file names and bytes (sorted).

    What identifies a model: two folders hash equal only if every file is
    byte-identical, whatever their sizes or timestamps.  ``recursive=False``
    hashes a folder's own files only (a model folder's weights, config and
    tokenizer, not whatever a subfolder holds).  Files named in ``skip``
    are left out.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                       if p.is_file() and p.name not in skip)
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
