"""Why ``ModelPolicy`` has no continuous-batching backend: what transformers' ``generate_batch`` covers today.

Issue 15 asked whether transformers' continuous batching (paged attention,
``ContinuousBatchingConfig(allow_block_sharing=True)``) could be the GPU
backend for the architectures the fast decoder does not cover.  On the CPU
it runs, and for a plain decoder it decodes exactly what ``generate`` does.
It refuses both paper architectures: Qwen3.5's linear-attention layers are
not a layer type it allocates for, and Gemma 4's full-attention layers have
wider heads than its sliding ones, which its cache sizing does not handle.
So both keep the standard loop (``sepo.policies.decode_loop``).  The last
two tests are the tripwire: when a transformers upgrade makes them fail,
the backend is worth building (``benchmarks/gpu_rollout.py`` already times
``generate_batch`` beside the other decode paths).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, ContinuousBatchingConfig, GenerationConfig

from tests.model_fixtures import tiny_model_dir
from tests.replicas import build_replica

NEW_TOKENS = 10


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(tiny_model_dir(str(tmp_path_factory.mktemp("cb"))))


def prompts_of(tokenizer) -> list[list[int]]:
    """Prompts of different lengths, so that rows are at different positions in the paged cache."""
    texts = ["Round 1 of 6. Your move?", "You played C, they played D. Round 3 of 6.\nLegal: C, D",
             "Pool: 3 books, 2 hats, 1 ball. Propose a split."]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def greedy_batch(model, tokenizer, prompts: list[list[int]]) -> list[list[int]]:
    config = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, eos_token_id=None,
                              pad_token_id=tokenizer.pad_token_id)
    out = model.generate_batch(inputs=prompts, generation_config=config, warmup=False,
                               continuous_batching_config=ContinuousBatchingConfig(allow_block_sharing=True))
    failed = [result.error for result in out.values() if result.error is not None]
    if failed or len(out) != len(prompts):  # generate_batch reports a failure per request, not by raising
        raise RuntimeError(f"{len(out)} of {len(prompts)} requests came back; errors: {failed[:1]}")
    return [list(result.generated_tokens) for result in out.values()]


def test_continuous_batching_runs_on_the_cpu_and_equals_generate_for_a_plain_decoder(tokenizer, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(str(tmp_path))).eval()
    prompts = prompts_of(tokenizer)
    batched = greedy_batch(model, tokenizer, prompts)
    for prompt, reply in zip(prompts, batched, strict=True):
        alone = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                               do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                               pad_token_id=tokenizer.pad_token_id)
        assert reply == alone[0, len(prompt):].tolist()


@pytest.mark.parametrize(("replica", "reason"), [("qwen35", "linear_attention"), ("gemma4", "head_dim")])
def test_continuous_batching_refuses_the_paper_architectures(tokenizer, replica, reason):
    model = build_replica(replica, tokenizer)
    with pytest.raises(Exception) as refused:  # transformers raises ValueError or its own type
        greedy_batch(model, tokenizer, prompts_of(tokenizer))
    assert reason in str(refused.value), (
        f"transformers now refuses the {replica} replica for another reason, or accepts it: re-check whether "
        f"continuous batching can be ModelPolicy's GPU backend for it (issue 15)")
