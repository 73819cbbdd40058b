"""Loading a policy model from a path, with one clear line when that fails.

A model directory is one of three things, all written by the pipeline:

- a full checkpoint (``config.json`` + safetensors + tokenizer): the tiny
  base or a fully fine-tuned model;
- a PEFT adapter (``adapter_config.json`` + tokenizer): a LoRA SFT or SEPO
  run; its base is named inside the adapter config;
- a Hub reference (``hub_model.json``: id, revision, the commit it resolved
  to): what the ``base_model`` stage writes for a Hub model instead of
  downloading it.

A Hub id may also be given directly.  Anything that cannot be loaded (a
missing path, a Hub id while offline, a folder without weights, a truncated
safetensors file, a garbage tokenizer) raises ``ConfigError`` with one line,
never a stack trace from deep inside transformers.  Every Gemma model gets
text-only token type ids (``sepo.models.token_types``), whoever calls it.

Trust: ``trust_remote_code`` comes from params alone; a folder's
``hub_model.json`` records it but cannot switch it on.  A SEPO adapter
(``sepo.models.adapter_base``) names its base relative to itself and with
the base's content hash, so it loads from any working directory and never
onto a different model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepo.errors import ConfigError
from sepo.models.token_types import needs_token_type_ids, zero_token_type_ids

HUB_REFERENCE = "hub_model.json"
ADAPTER_CONFIG = "adapter_config.json"
#: files that hold a model's (or an adapter's) weights; one of them must be there
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
#: JSON files of a model folder that transformers parses; a garbage one is named, not a JSONDecodeError
JSON_FILES = ("config.json", ADAPTER_CONFIG, "tokenizer.json", "tokenizer_config.json", "generation_config.json",
              "special_tokens_map.json", "model.safetensors.index.json")


@dataclass(frozen=True)
class HubReference:
    """A Hub model pinned to a revision and, when the Hub was reachable, the commit that revision was.

    ``trust_remote_code`` is recorded for the reader; loading takes it from params only.
    """

    model_id: str
    revision: str
    trust_remote_code: bool = False
    commit: str | None = None
    note: str = ""

    def write(self, directory: str | Path) -> None:
        from sepo.io import write_json_atomic

        write_json_atomic(Path(directory) / HUB_REFERENCE, {
            "model_id": self.model_id, "revision": self.revision, "trust_remote_code": self.trust_remote_code,
            "commit": self.commit, "note": self.note})

    @classmethod
    def read(cls, directory: str | Path) -> HubReference:
        path = Path(directory) / HUB_REFERENCE
        try:
            data = json.loads(path.read_text())
            return cls(data["model_id"], data["revision"], bool(data.get("trust_remote_code", False)),
                       data.get("commit"), data.get("note", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a Hub reference ({type(exc).__name__}: {exc}); rerun the "
                              "base_model stage") from None

    @property
    def pinned(self) -> str:
        """What to download: the resolved commit when there is one, else the revision as given."""
        return self.commit or self.revision


def resolve_hub_commit(model_id: str, revision: str, timeout: float = 10.0) -> tuple[str | None, str]:
    """(commit hash ``revision`` resolves to, a note); (None, why) when offline or not found."""
    import os

    if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision, "the revision is a commit"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return None, f"offline (HF_HUB_OFFLINE): revision {revision!r} NOT resolved to a commit"
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(model_id, revision=revision, timeout=timeout).sha, "resolved on the Hub"
    except Exception as exc:  # any failure to reach or read the Hub means: not resolved
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"Hub unreachable ({first[:120]}): revision {revision!r} NOT resolved to a commit"


def check_model_folder(directory: str | Path) -> None:
    """A local model or adapter folder is complete and parseable; else one ``ConfigError`` line naming the file."""
    from safetensors import SafetensorError, safe_open

    directory = Path(directory)
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError(f"model directory {directory} holds no weights (none of {', '.join(WEIGHT_FILES)}); "
                          "the stage that writes it did not finish, rerun it")
    for name in JSON_FILES:
        path = directory / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); the model folder is "
                                  "damaged, rerun the stage that writes it") from None
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]}); the "
                              "model folder is damaged, rerun the stage that writes it") from None


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with no path-like start: a Hub id rather than a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and not Path(name).exists()


def resolve_model_source(path: str | Path, trust_remote_code: bool = False) -> tuple[str, str | None, bool]:
    """(name or directory to load, revision, trust_remote_code) for ``path``; ConfigError if hopeless.

    ``trust_remote_code`` is the params value and is returned as is: a
    ``hub_model.json`` in a folder cannot turn it on.
    """
    text = str(path)
    directory = Path(text)
    if directory.is_dir():
        if (directory / HUB_REFERENCE).is_file():
            ref = HubReference.read(directory)
            return ref.model_id, ref.pinned, trust_remote_code
        if not any((directory / name).is_file() for name in ("config.json", ADAPTER_CONFIG)):
            raise ConfigError(f"model directory {text} holds no config.json, {ADAPTER_CONFIG} or {HUB_REFERENCE}")
        check_model_folder(directory)
        return text, None, trust_remote_code
    if looks_like_hub_id(text):
        return text, None, trust_remote_code
    raise ConfigError(f"model path not found: {text}")


def load_model_and_tokenizer(path: str | Path, *, trust_remote_code: bool = False, device: str | None = None,
                             dtype: Any = None, merge_adapter: bool = True):
    """(model in eval mode, tokenizer) from a directory or Hub id, Gemma's token types supplied.

    ``dtype`` is a torch dtype or "auto" (the checkpoint's); None is float32,
    which CPUs need.  A LoRA adapter is loaded on its base and, with
    ``merge_adapter``, merged into it: faster to sample from and the same
    policy.
    """
    from safetensors import SafetensorError

    from sepo.models.adapter_base import adapter_base

    source, revision, remote_code = resolve_model_source(path, trust_remote_code)
    local = Path(source).is_dir()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {"revision": revision, "trust_remote_code": remote_code}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model_kwargs = {**kwargs, "dtype": torch.float32 if dtype is None else dtype}
        base = adapter_base(source) if local else None
        if base is not None:  # a SEPO adapter: its base as it recorded it, checked by content hash
            from peft import PeftModel

            base_model, _ = load_model_and_tokenizer(base, trust_remote_code=trust_remote_code, dtype=dtype)
            model = PeftModel.from_pretrained(base_model, source)
            if merge_adapter:
                model = model.merge_and_unload()
        elif Path(source, ADAPTER_CONFIG).is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(source, **model_kwargs)
            if merge_adapter:
                model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if local:
            raise ConfigError(f"cannot load model directory {source}: {first}") from None
        raise ConfigError(f"cannot load model {source!r} (not a local model directory, and the Hub "
                          f"is unreachable or has no such model): {first}") from None
    except (SafetensorError, ValueError, KeyError) as exc:  # a damaged file the checks above did not catch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load model {source}: {type(exc).__name__}: {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if needs_token_type_ids(model.config.model_type):
        zero_token_type_ids(model)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
