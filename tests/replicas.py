"""Tiny random-weight replicas of the paper's architectures, built from transformers configs (no download).

Each replica keeps the features that decide how the project's code must
treat the model, at a size a CPU test can afford:

- ``qwen35``: ``Qwen3_5ForConditionalGeneration`` whose text layers
  alternate linear attention (gated delta net: a conv state and a recurrent
  state, no keys/values) and full attention, with a vision tower;
- ``gemma4``: ``Gemma4ForConditionalGeneration`` with sliding-window and
  full-attention layers (a window shorter than the prompts), key/value
  sharing in its last layers (their cache is a ``DummyLayer``), per-layer
  embeddings, final logit soft-capping, and vision and audio towers.

The vocabulary is the project's tiny tokenizer's (``tests.model_fixtures``),
so the chats, parser and stop rule are exercised as in the pipeline.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from tests.model_fixtures import tiny_model_dir

REPLICAS = ("qwen35", "gemma4")


def _qwen35(vocab: int, pad: int, eos: int):
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    text = {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "layer_types": ["linear_attention", "full_attention", "linear_attention", "full_attention"],
            "linear_conv_kernel_dim": 4, "linear_key_head_dim": 8, "linear_value_head_dim": 8,
            "linear_num_key_heads": 2, "linear_num_value_heads": 4, "max_position_embeddings": 4096,
            "pad_token_id": pad, "eos_token_id": eos, "bos_token_id": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25,
                                "mrope_section": [1, 1, 0], "mrope_interleaved": True}}
    vision = {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
              "patch_size": 4, "num_position_embeddings": 16}
    config = Qwen3_5Config(text_config=text, vision_config=vision, image_token_id=vocab - 1,
                           video_token_id=vocab - 2, vision_start_token_id=vocab - 3, vision_end_token_id=vocab - 4)
    return Qwen3_5ForConditionalGeneration(config)


def _gemma4(vocab: int, pad: int, eos: int):
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    text = {"vocab_size": vocab, "vocab_size_per_layer_input": vocab, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "global_head_dim": 16, "hidden_size_per_layer_input": 8, "sliding_window": 16,
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention",
                            "sliding_attention", "sliding_attention", "full_attention"],
            "num_kv_shared_layers": 3, "final_logit_softcapping": 30.0, "max_position_embeddings": 4096,
            "pad_token_id": pad, "eos_token_id": eos, "bos_token_id": None}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "head_dim": 8, "patch_size": 4, "position_embedding_size": 64}
    audio = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "subsampling_conv_channels": [8, 4], "output_proj_dims": 16}
    config = Gemma4Config(text_config=text, vision_config=vision, audio_config=audio,
                          boi_token_id=vocab - 1, eoi_token_id=vocab - 2, image_token_id=vocab - 3,
                          video_token_id=vocab - 4, boa_token_id=vocab - 5, eoa_token_index=vocab - 6,
                          audio_token_id=vocab - 7)
    return Gemma4ForConditionalGeneration(config)


def build_replica(name: str, tokenizer, seed: int = 0):
    """A random replica ``name`` (see ``REPLICAS``) with ``tokenizer``'s vocabulary and special ids."""
    torch.manual_seed(seed)
    build = {"qwen35": _qwen35, "gemma4": _gemma4}[name]
    model = build(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model.eval()


@cache
def replica_dir(name: str, tmp_root: str) -> Path:
    """Save replica ``name`` and the tiny tokenizer under ``tmp_root`` once; return the folder."""
    from transformers import AutoTokenizer

    source = tiny_model_dir(tmp_root)
    tokenizer = AutoTokenizer.from_pretrained(source)
    folder = Path(tmp_root) / f"replica-{name}"
    tokenizer.save_pretrained(folder)
    build_replica(name, tokenizer).save_pretrained(folder)
    return folder
