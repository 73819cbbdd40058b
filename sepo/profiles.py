"""Named params profiles (``profiles/NAME.yaml``) and the resolved training plan of one.

A profile is the part of ``params.yaml`` that differs for a setting, such as
the paper's GPU runs (``paper-qwen``, ``paper-gemma``; SPEC sections 5-7).
Its mappings merge into ``params.yaml`` key by key; any other value (a list,
a string, a number) replaces the one there.  Three ways to use one:

- ``sepo plan --profile NAME``: the merged params validated by the schema,
  and the objects the stages would build from them (TRL's ``SFTConfig`` and
  one ``GRPOConfig`` per domain, PEFT's ``LoraConfig``s, the sampling
  settings), printed as JSON.  Nothing is loaded or downloaded
  (``HF_HUB_OFFLINE``);
- ``sepo profile NAME``: the ``dvc exp run -S ...`` command that runs the
  pipeline as a DVC experiment with the profile (``params.yaml`` unchanged;
  DVC writes floats such as ``1e-05``, which PyYAML reads as strings and the
  schema turns back into the same floats);
- ``sepo profile NAME --apply``: the profile's values written into
  ``params.yaml`` in place (its comments kept), then ``dvc repro``.

Gemma 4's LoRA targets are one regular expression over the language model's
projections (``LoraParams.target_modules``): its vision and audio towers
also have ``q_proj``... modules, wrappers PEFT cannot adapt.

Gemma's ``token_type_ids``: SPEC asks for zeros (older transformers refused
to train Gemma without them; transformers 5 names them ``mm_token_type_ids``
and treats them as optional).  ``sepo.models.token_types.zero_token_type_ids``
supplies text-only zeros to every submodule whose forward takes them,
whatever calls it (TRL's trainers, PEFT wrappers, the policy);
``sepo.models.loading`` applies it to every Gemma model it loads.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sepo.config import PROFILES_DIR, Params, parse_params, read_yaml_mapping
from sepo.errors import ConfigError, unknown_name
from sepo.models.token_types import needs_token_type_ids


def profile_names(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> dict[str, Any]:
    """The overrides of profile ``name``; an unknown name is one line listing the valid ones."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise unknown_name("profile", name, profile_names(directory))
    return read_yaml_mapping(path, "a mapping of params overrides")


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings key by key, anything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: str | Path) -> dict[str, Any]:
    return read_yaml_mapping(path)


def resolve(params_path: str | Path, profile: str | None, directory: Path = PROFILES_DIR) -> Params:
    """``params_path`` with profile ``profile`` merged in (None: as it is), validated by the schema."""
    raw = _read_yaml(params_path)
    if profile is None:
        return parse_params(raw, str(params_path))
    return parse_params(merged(raw, load_profile(profile, directory)), f"{params_path} + profile {profile}")


# -- applying a profile ------------------------------------------------------------------------
def leaves(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) for every non-mapping value of ``tree`` (an empty mapping sets nothing)."""
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def _plain(text: str) -> bool:
    """True if ``text`` reads back as the same string unquoted (in YAML and in Hydra's grammar)."""
    stripped = text.replace("_", "").replace("-", "").replace("/", "").replace(".", "")
    return stripped.isalnum() and isinstance(yaml.safe_load(text), str)


def _hydra_value(value: Any) -> str:
    """``value`` in the override grammar of ``dvc exp run -S`` (Hydra's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _plain(text):
        return text
    # in a quoted string Hydra reads a backslash literally, except before a quote or the end
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""),
                     text)
    return f"'{escaped}'"


def dvc_overrides(params_path: str | Path, name: str, directory: Path = PROFILES_DIR) -> list[str]:
    """``KEY=VALUE`` per value of the profile (``+KEY=VALUE`` for a key ``params_path`` lacks)."""
    resolve(params_path, name, directory)  # a profile that does not validate yields no command
    base = dict(leaves(_read_yaml(params_path)))
    known_prefixes = {k.rsplit(".", i)[0] for k in base for i in range(k.count(".") + 1)}
    return [("" if key in base or key in known_prefixes else "+") + f"{key}={_hydra_value(value)}"
            for key, value in leaves(load_profile(name, directory))]


def dvc_command(params_path: str | Path, name: str, directory: Path = PROFILES_DIR) -> str:
    """The one shell command that runs the pipeline as DVC experiment ``name`` with the profile."""
    parts = ["dvc", "exp", "run", "-n", name]
    for override in dvc_overrides(params_path, name, directory):
        parts += ["-S", override]
    return shlex.join(parts)


def apply_profile(params_path: str | Path, name: str, directory: Path = PROFILES_DIR) -> list[str]:
    """Write the profile's values into ``params_path`` in place (comments kept); the keys changed.

    The file is rewritten only if the result validates and reads back (with
    the PyYAML loader the stages use) as exactly the resolved profile.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.representer import RoundTripRepresenter
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    class Representer(RoundTripRepresenter):
        """Writes null as ``null`` and floats that PyYAML reads as floats."""

    Representer.add_representer(type(None),
                                lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    Representer.add_representer(float, _float_for_pyyaml)
    expected = resolve(params_path, name, directory)
    path = Path(params_path)
    original = path.read_text()
    document = YAML()
    document.Representer = Representer
    document.width = 4096  # a long flow mapping stays on its lines instead of being re-wrapped
    document.preserve_quotes = True
    document.indent(mapping=2, sequence=4, offset=2)
    tree = document.load(original)

    def node(value: Any) -> Any:
        if isinstance(value, Mapping):
            out = CommentedMap((k, node(v)) for k, v in value.items())
            out.fa.set_flow_style()
            return out
        if isinstance(value, list):
            out = CommentedSeq(node(v) for v in value)
            out.fa.set_flow_style()
            return out
        if isinstance(value, str) and not _plain(value):
            return SingleQuotedScalarString(value)
        return value

    changed = []
    for key, value in leaves(load_profile(name, directory)):
        *parents, last = key.split(".")
        target = tree
        for part in parents:
            target = target.setdefault(part, CommentedMap())
        if target.get(last) != value:
            target[last] = node(value)
            changed.append(key)
    with path.open("w") as handle:
        document.dump(tree, handle)
    if resolve(path, None) != expected:
        path.write_text(original)
        raise ConfigError(f"{path}: writing profile {name} did not reproduce it; the file is unchanged")
    return changed


def _float_for_pyyaml(representer, value: float):
    """A float that YAML 1.1 (PyYAML) also reads as a float: ``1e-05`` is a string there, ``1.0e-05`` not."""
    if math.isinf(value) or math.isnan(value):
        text = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    else:
        text = repr(value)
        if "." not in text:
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0" + (f"e{exponent}" if exponent else "")
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


# -- the plan ------------------------------------------------------------------------------------
#: fields printed even where they equal the library default, because the paper fixes them
KEY_FIELDS = {
    "sft": ("learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps",
            "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "bf16",
            "completion_only_loss", "gradient_checkpointing", "save_steps"),
    "grpo": ("learning_rate", "lr_scheduler_type", "beta", "epsilon", "num_generations", "max_grad_norm",
             "temperature", "loss_type", "scale_rewards", "max_steps", "save_steps", "bf16",
             "per_device_train_batch_size", "use_vllm"),
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _set_fields(config, always: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a trainer config that differ from its class's defaults, plus ``always``.

    The defaults are built on the same device settings (bf16, use_cpu), which
    the trainer configs check against the machine.
    """
    reference = type(config)(output_dir="defaults", bf16=config.bf16, use_cpu=config.use_cpu).to_dict()
    return {k: _jsonable(v) for k, v in config.to_dict().items() if k in always or v != reference.get(k)}


def _lora_fields(config) -> dict[str, Any]:
    """What a ``LoraConfig`` sets apart from PEFT's defaults, and always its rank, scale, dropout, targets."""
    from peft import LoraConfig

    always = ("r", "lora_alpha", "lora_dropout", "target_modules")
    reference = LoraConfig().to_dict()
    return {k: _jsonable(v) for k, v in config.to_dict().items() if k in always or v != reference.get(k)}


def bf16_device() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def build_plan(params: Params, profile: str | None) -> dict[str, Any]:
    """Everything the stages would build from ``params``, as plain data (see the module doc)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may download (read when the hub library loads)
    from dataclasses import asdict

    from sepo.sft import sft_config
    from sepo.training.rollout import sampling_settings
    from sepo.training.run import RunPlan, grpo_config

    notes = []
    sft = params.sft
    if sft.bf16 and not bf16_device():
        sft = sft.model_copy(update={"bf16": False})
        notes.append("sft.bf16 is true: this machine has no bf16 GPU and transformers refuses bf16 without "
                     "one, so the SFTConfig was checked with bf16 off; the sft stage sets it on the GPU")
    built_sft = sft_config(sft, "data/checkpoints/sft", has_eval=sft.valid_examples_per_domain > 0)
    sft_fields = _set_fields(built_sft, KEY_FIELDS["sft"])
    sft_fields["bf16"] = params.sft.bf16
    grpo: dict[str, Any] = {}
    for game in params.games:
        plan = RunPlan.from_params(params, game)
        built = grpo_config(params, plan, f"data/checkpoints/sepo/{game}")
        grpo[game] = _set_fields(built, KEY_FIELDS["grpo"])
    if not bf16_device():
        notes.append("grpo bf16 is chosen by the device at run time (sepo.training.run.grpo_config): "
                     "true on a bf16 GPU, false here")
    base = params.model.base
    return {
        "profile": profile or params.profile,
        "model": {"base": base, "revision": params.model.revision,
                  "trust_remote_code": params.model.trust_remote_code,
                  "token_type_ids": ("zeros for text tokens (sepo.models.token_types.zero_token_type_ids)"
                                     if needs_token_type_ids(base) else "not used")},
        "sft": {"config": sft_fields, "method": params.sft.method, "corpus": params.sft.corpus,
                "examples_per_domain": dict(params.sft.examples_per_domain),
                "lora": _lora_fields(params.sft.lora.peft_config()) if params.sft.method == "lora" else None},
        "sepo": {"grpo_config": grpo,
                 "lora": _lora_fields(params.sepo.lora.peft_config()),
                 "run": params.sepo.model_dump(exclude={"lora"}), "penalty_mode": params.penalty.mode},
        "generation": {**asdict(sampling_settings(params)), "batch_size": params.generation.batch_size,
                       "seed": params.generation.seed},
        "eval_episodes_per_opponent": params.eval.episodes,
        "notes": notes,
    }
