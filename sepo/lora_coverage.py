"""Which modules and layers a LoRA config adapts, and how many parameters it trains, without any weights.

Why: the paper profiles name LoRA targets by module name (``q_proj``...),
and whether those names exist depends on the layer: Qwen3.5's
linear-attention layers (three of every four) have ``linear_attn.in_proj_qkv``,
``in_proj_z``, ``in_proj_b``, ``in_proj_a`` and ``out_proj`` but no
q/k/v/o, so the paper's targets adapt only its full-attention layers; Gemma
4's shared-KV layers compute no keys/values of their own, so there k/v
adapters train nothing.  ``sepo plan`` prints this so that nobody learns it
from a training run.

How: the model is built from its config on the meta device
(``accelerate.init_empty_weights``: shapes only, no memory, no download)
and PEFT's own target matching is applied to it.  The config is the base
model's own when it can be read offline (a local folder, or the Hub cache);
otherwise transformers' default config of the same architecture, which has
the same layer pattern but not the same sizes (the report says which).
"""

from __future__ import annotations

import os
import re
from typing import Any

#: Qwen3.5's linear-attention projections: add them to ``lora.target_modules`` to adapt those layers too
QWEN35_LINEAR_ATTENTION_TARGETS = ("in_proj_qkv", "in_proj_z", "out_proj")


def _default_config(base: str):
    """Transformers' default config of ``base``'s architecture (by name), or None for other families."""
    name = base.lower()
    if "qwen3.5" in name or "qwen3_5" in name:
        from transformers import Qwen3_5TextConfig

        return Qwen3_5TextConfig()
    if "gemma-4" in name or "gemma4" in name:
        from transformers import Gemma4Config

        return Gemma4Config()
    return None


def _tiny_config(params):
    """The config ``sepo.models.tiny.build_tiny_model`` builds, with the tiny tokenizer's vocabulary size."""
    from transformers import Qwen3Config

    t = params.model.tiny
    return Qwen3Config(vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                       num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                       num_key_value_heads=t.num_key_value_heads, head_dim=t.hidden_size // t.num_attention_heads,
                       tie_word_embeddings=t.tie_word_embeddings)


def coverage_config(base: str, revision: str | None = None) -> tuple[Any, str] | None:
    """(config, where it came from) for ``base``, read offline; None if neither it nor a default is known."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base, revision=revision), f"the config of {base}"
    except (OSError, ValueError):
        default = _default_config(base)
        if default is None:
            return None
        return default, (f"transformers' default {type(default).__name__} (the same layer pattern as {base}, "
                         "not its sizes: its config.json is not available offline)")


def lora_coverage(config, peft_config) -> dict[str, Any]:
    """Adapted module names, layers with and without adapters (by layer type), trainable parameters."""
    from accelerate import init_empty_weights
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
        model = get_peft_model(model, peft_config)
    adapted = sorted(name.removesuffix(".lora_A") for name, _ in model.named_modules() if name.endswith(".lora_A"))
    text = config.get_text_config()
    types = list(getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers)
    layers: dict[int, set[str]] = {}
    for name in adapted:
        match = re.search(r"layers\.(\d+)\.(.+)$", name)
        if match:
            layers.setdefault(int(match.group(1)), set()).add(match.group(2))
    by_type: dict[str, dict[str, Any]] = {}
    for index, layer_type in enumerate(types):
        entry = by_type.setdefault(layer_type, {"layers": 0, "with_adapters": 0, "modules": set()})
        entry["layers"] += 1
        if index in layers:
            entry["with_adapters"] += 1
            entry["modules"] |= layers[index]
    notes = []
    linear = by_type.get("linear_attention")
    if linear is not None and linear["with_adapters"] == 0:
        notes.append(f"the {linear['layers']} linear-attention layers (of {len(types)}) carry no q_proj/k_proj/"
                     "v_proj/o_proj, so these targets adapt only the full-attention layers (the paper's choice); "
                     f"adding {', '.join(QWEN35_LINEAR_ATTENTION_TARGETS)} to lora.target_modules adapts their "
                     "linear-attention projections too")
    shared = getattr(text, "num_kv_shared_layers", 0) or 0
    if shared:
        notes.append(f"the last {shared} layers reuse earlier layers' keys/values: their k_proj/v_proj are not "
                     "run, so adapters there train nothing")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "modules": sorted({n.rsplit(".", 1)[-1] for n in adapted}),
        "layers_with_adapters": _ranges(sorted(layers)),
        "layers_without_adapters": _ranges([i for i in range(len(types)) if i not in layers]),
        "by_layer_type": {t: {**e, "modules": sorted(e["modules"])} for t, e in by_type.items()},
        "trainable_parameters": trainable,
        "notes": notes,
    }


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``"0-2,5"``: a 36-layer list stays one line of the plan."""
    parts: list[str] = []
    for i in indices:
        if parts and i - 1 == int(parts[-1].rsplit("-", 1)[-1]):
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def plan_coverage(params) -> dict[str, Any]:
    """The SFT and SEPO LoRA coverage of ``params``' base model (the ``lora_coverage`` key of ``sepo plan``)."""
    found = (_tiny_config(params), "the tiny profile's Qwen3 (params.model.tiny)") if params.model.base == "tiny" \
        else coverage_config(params.model.base, params.model.revision)
    if found is None:
        return {"unavailable": f"no config of {params.model.base} offline and no default for its architecture"}
    config, source = found
    out: dict[str, Any] = {"computed_on": source}
    if params.sft.method == "lora":
        out["sft"] = lora_coverage(config, params.sft.lora.peft_config())
    out["sepo"] = lora_coverage(config, params.sepo.lora.peft_config())
    return out
