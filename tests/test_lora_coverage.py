"""``sepo plan``'s LoRA coverage: which layers the profiles' targets adapt, computed on meta-device models."""

from __future__ import annotations

import pytest
from peft import LoraConfig

from sepo.lora_coverage import QWEN35_LINEAR_ATTENTION_TARGETS, coverage_config, lora_coverage, plan_coverage
from sepo.profiles import resolve
from tests.model_fixtures import ROOT

pytestmark = pytest.mark.slow  # builds 4B-sized models on the meta device: no memory, but seconds each


def test_the_qwen_profile_says_its_linear_attention_layers_get_no_adapters():
    coverage = plan_coverage(resolve(ROOT / "params.yaml", "paper-qwen"))
    for stage in ("sft", "sepo"):
        by_type = coverage[stage]["by_layer_type"]
        assert by_type["linear_attention"]["with_adapters"] == 0
        assert by_type["full_attention"]["with_adapters"] == by_type["full_attention"]["layers"] > 0
        assert any("linear-attention layers" in note and "no q_proj" in note for note in coverage[stage]["notes"])
        assert coverage[stage]["trainable_parameters"] > 0
    # SFT's rank 32 trains twice the parameters of SEPO's rank 16 on the same modules
    assert coverage["sft"]["trainable_parameters"] == 2 * coverage["sepo"]["trainable_parameters"]


def test_the_documented_targets_adapt_the_linear_attention_layers_too():
    config, _ = coverage_config("Qwen/Qwen3.5-4B")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", *QWEN35_LINEAR_ATTENTION_TARGETS]
    coverage = lora_coverage(config, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    assert coverage["layers_without_adapters"] == ""
    assert set(coverage["by_layer_type"]["linear_attention"]["modules"]) == {
        f"linear_attn.{name}" for name in QWEN35_LINEAR_ATTENTION_TARGETS}
    assert coverage["notes"] == []


def test_the_gemma_profile_adapts_the_language_model_only_and_the_tiny_profile_every_layer():
    gemma = plan_coverage(resolve(ROOT / "params.yaml", "paper-gemma"))["sepo"]
    assert gemma["layers_without_adapters"] == "" and gemma["modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    tiny = plan_coverage(resolve(ROOT / "params.yaml", None))
    assert tiny["sepo"]["layers_without_adapters"] == "" and tiny["sepo"]["trainable_parameters"] > 0
