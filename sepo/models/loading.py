"""Loading a policy model from a path, with one clear line when that fails.

A model directory is one of three things, all written by the pipeline:

- a full checkpoint (``config.json`` + safetensors + tokenizer): the tiny
  base or a fully fine-tuned model;
- a PEFT adapter (``adapter_config.json`` + tokenizer): a LoRA SFT or SEPO
  run; its base is named inside the adapter config;
- a Hub reference (``hub_model.json``: id, revision): what the ``base_model``
  stage writes for a Hub model instead of downloading it.

A Hub id may also be given directly.  Anything that cannot be loaded (a
missing path, a Hub id while offline) raises ``ConfigError`` with one line,
never a stack trace from deep inside transformers.  Every Gemma model gets
text-only token type ids (``sepo.models.token_types``), whoever calls it.
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


@dataclass(frozen=True)
class HubReference:
    """A Hub model pinned to a revision; ``trust_remote_code`` stays off unless a param turns it on."""

    model_id: str
    revision: str
    trust_remote_code: bool = False

    def write(self, directory: str | Path) -> None:
        from sepo.io import write_json_atomic

        write_json_atomic(Path(directory) / HUB_REFERENCE, {
            "model_id": self.model_id, "revision": self.revision, "trust_remote_code": self.trust_remote_code})

    @classmethod
    def read(cls, directory: str | Path) -> HubReference:
        data = json.loads((Path(directory) / HUB_REFERENCE).read_text())
        return cls(data["model_id"], data["revision"], bool(data.get("trust_remote_code", False)))


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` with no path-like start: a Hub id rather than a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and not Path(name).exists()


def resolve_model_source(path: str | Path, trust_remote_code: bool = False) -> tuple[str, str | None, bool]:
    """(name or directory to load, revision, trust_remote_code) for ``path``; ConfigError if hopeless."""
    text = str(path)
    directory = Path(text)
    if directory.is_dir():
        if (directory / HUB_REFERENCE).is_file():
            ref = HubReference.read(directory)
            return ref.model_id, ref.revision, ref.trust_remote_code or trust_remote_code
        if not any((directory / name).is_file() for name in ("config.json", ADAPTER_CONFIG)):
            raise ConfigError(f"model directory {text} holds no config.json, {ADAPTER_CONFIG} or {HUB_REFERENCE}")
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
    source, revision, remote_code = resolve_model_source(path, trust_remote_code)
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {"revision": revision, "trust_remote_code": remote_code}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model_kwargs = {**kwargs, "dtype": torch.float32 if dtype is None else dtype}
        if Path(source, ADAPTER_CONFIG).is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(source, **model_kwargs)
            if merge_adapter:
                model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load model {source!r} (not a local model directory, and the Hub "
                          f"is unreachable or has no such model): {first}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if needs_token_type_ids(model.config.model_type):
        zero_token_type_ids(model)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
