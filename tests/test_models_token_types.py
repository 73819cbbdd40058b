"""Every Gemma model the pipeline loads gets text-only token type ids; other models are left alone."""

from __future__ import annotations

import torch

from sepo.models.loading import load_model_and_tokenizer
from tests.test_profiles import tiny_gemma4
from tests.test_training_chat_tokens import tiny_model_dir, tiny_tokenizer


def hooked(model) -> bool:
    return any(hasattr(module, "_sepo_token_type_arguments") for module in model.modules())


def test_a_loaded_gemma_receives_zero_token_types_in_forward_and_generate(tmp_path):
    tiny_gemma4().save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, _ = load_model_and_tokenizer(tmp_path)
    assert hooked(model)
    seen = []
    model.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("mm_token_type_ids")),
                                          with_kwargs=True)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with torch.no_grad():
        implicit = model(input_ids=ids).logits
        explicit = model(input_ids=ids, mm_token_type_ids=torch.zeros_like(ids)).logits
        generated = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert torch.equal(seen[0], torch.zeros_like(ids))
    assert all(types is not None and not types.any() for types in seen)  # decode steps included
    torch.testing.assert_close(implicit, explicit)
    assert generated.shape == (2, 7)


def test_a_qwen_model_is_not_hooked():
    model, _ = load_model_and_tokenizer(tiny_model_dir())
    assert not hooked(model)
