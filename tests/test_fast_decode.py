"""The fast decode path gives the stock model's outputs: exact in float32, within rounding in bf16.

Tiny random decoders on the CPU (no compile): the GPU runs the same code
with the decode step captured in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

from sepo.policies.fast_decode import FastDecoder, FastGenerator, grouped_sdpa, sample_tokens

VOCAB = 300
STOP = 1


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is fastest, more only contend on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50
    max_new_tokens: int = 12
    greedy: bool = True


def tiny_model(kind: str = "qwen3", dtype: torch.dtype = torch.float32):
    shape = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                 pad_token_id=0, eos_token_id=STOP)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**shape)) if kind == "qwen3" else LlamaForCausalLM(LlamaConfig(**shape))
    model.set_attn_implementation("sdpa")
    return model.to(dtype).eval()


def prompts(lengths=(5, 9, 3, 14, 7)) -> list[list[int]]:
    return [[2 + (i * 7 + j * 3) % (VOCAB - 2) for j in range(n)] for i, n in enumerate(lengths)]


def hf_greedy(model, batch: list[list[int]], new_tokens: int) -> list[list[int]]:
    """Stock ``generate``: left padding, stock attention, exactly ``new_tokens`` tokens."""
    width = max(map(len, batch))
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(batch):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, pad_token_id=0)
    return out[:, width:].tolist()


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
@pytest.mark.parametrize("slots", [5, 16])  # every slot steps / only the call's rows step
def test_greedy_replies_equal_stock_generate_in_float32(kind, slots):
    model = tiny_model(kind)
    batch = prompts()
    expected = hf_greedy(model, batch, 12)
    generator = FastGenerator(model, Sampling(), slots=slots, capacity=64, compile=False)
    assert [ids for ids, _ in generator.generate(batch, list("abcde"))] == expected


def test_later_rounds_reuse_the_slots_and_equal_a_fresh_run():
    model = tiny_model()
    batch = prompts()
    generator = FastGenerator(model, Sampling(), slots=5, capacity=600, compile=False)
    first = generator.generate(batch, list("abcde"))  # reads the first 256 columns of the slots
    # the next decision: the chat grows by the reply and a new user turn; one episode also rewrites
    # its last reply's final token (the common prefix is shorter than what its slot holds), and one
    # grows past 256 tokens (the call reads 512 columns)
    grown = [p + ids + [7, 8, 9] for p, (ids, _) in zip(batch, first, strict=True)]
    grown[2] = batch[2] + first[2][0][:-1] + [4, 4]
    grown[4] += [5 + t % 200 for t in range(260)]
    assert generator.decoder.window_for(len(grown[4]) + 11) == 512
    second = generator.generate(grown, list("abcde"))
    assert [ids for ids, _ in second] == hf_greedy(model, grown, 12)
    assert generator._held[generator._slot_of["a"]][:len(grown[0])] == grown[0]


def test_more_episodes_than_slots_evicts_the_least_recent_and_stays_exact():
    model = tiny_model()
    batch = prompts()
    generator = FastGenerator(model, Sampling(), slots=3, capacity=96, compile=False)
    for start in range(0, 5, 3):  # a b c, then d e (evicting a b)
        generator.generate(batch[start:start + 3], list("abcde")[start:start + 3])
    again = generator.generate(batch[:3], list("abc"))
    assert [ids for ids, _ in again] == hf_greedy(model, batch[:3], 12)


def teacher_forced_logits(model, batch: list[list[int]], forced: list[list[int]]) -> torch.Tensor:
    """Logits after each prompt and after each forced token: prefill, then the all-slot step."""
    decoder = FastDecoder(model, slots=len(batch), capacity=64, sampling=Sampling(), compile=False)
    with torch.inference_mode():
        window = decoder.window_for(max(map(len, batch)) + len(forced[0]))
        out = [decoder.prefill(range(len(batch)), batch, [0] * len(batch), window=window)]
        positions = torch.tensor([len(p) for p in batch])
        for t in range(len(forced[0])):
            tokens = torch.tensor([f[t] for f in forced])
            last = torch.zeros_like(tokens)
            out.append(decoder.logits(tokens[:, None], (positions + t)[:, None], None, last, window))
    return torch.stack(out, dim=1)


def stock_logits(model, batch: list[list[int]], forced: list[list[int]]) -> torch.Tensor:
    """The same logits from one stock forward pass per sequence."""
    rows = []
    with torch.inference_mode():
        for p, f in zip(batch, forced, strict=True):
            logits = model(input_ids=torch.tensor([p + f])).logits[0].float()
            rows.append(logits[len(p) - 1:])
    return torch.stack(rows)


def test_logits_equal_a_stock_forward_pass_float32_and_bf16_within_rounding():
    batch = prompts()
    forced = [[(11 * i + 5 * t) % VOCAB for t in range(6)] for i in range(len(batch))]
    reference = stock_logits(tiny_model(), batch, forced)
    ours = teacher_forced_logits(tiny_model(), batch, forced)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    stock_bf16 = stock_logits(tiny_model(dtype=torch.bfloat16), batch, forced)
    ours_bf16 = teacher_forced_logits(tiny_model(dtype=torch.bfloat16), batch, forced)
    stock_error = (stock_bf16 - reference).abs().max().item()
    assert (ours_bf16 - reference).abs().max().item() <= 2 * stock_error + 1e-3
    assert (ours_bf16 - stock_bf16).abs().max().item() <= 2 * stock_error + 1e-3


def test_grouped_attention_equals_repeated_heads_under_a_padding_mask():
    torch.manual_seed(1)
    query, key, value = torch.randn(3, 8, 5, 16), torch.randn(3, 2, 11, 16), torch.randn(3, 2, 11, 16)
    mask = torch.rand(3, 1, 5, 11) > 0.3
    mask[..., 0] = True
    repeated = [t.repeat_interleave(4, dim=1) for t in (key, value)]
    expected = torch.nn.functional.scaled_dot_product_attention(query, *repeated, attn_mask=mask)
    torch.testing.assert_close(grouped_sdpa(query, key, value, mask, None), expected)


def test_the_model_switched_to_the_grouped_attention_is_unchanged_elsewhere():
    model = tiny_model()
    ids = torch.tensor(prompts([9, 9]))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 9])
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).logits
        FastDecoder(model, slots=2, capacity=16, sampling=Sampling(), compile=False)
        after = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(after, before)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 4), st.integers(min_value=1, max_value=12), st.sampled_from([0, 1, 5, 12]))
def test_replies_stop_at_the_exact_step_whatever_the_check_interval(check_every, stop_token, top_k):
    model = tiny_model()
    sampling = Sampling(greedy=False, temperature=1.5, top_k=top_k, top_p=0.9)
    runs = []
    for interval in (1, check_every):
        generator = FastGenerator(model, sampling, slots=5, capacity=64, compile=False, seed=3,
                                  stop_ids={stop_token}, newline_ids=frozenset({2, 3}),
                                  is_complete=lambda ids: len(ids) >= 4, check_every=interval)
        runs.append(generator.generate(prompts()))
    assert runs[0] == runs[1]
    for ids, logprobs in runs[0]:
        assert len(ids) == len(logprobs) <= sampling.max_new_tokens
        cut = [t for t, token in enumerate(ids) if token == stop_token or (token in (2, 3) and t >= 3)]
        assert cut[:1] in ([len(ids) - 1], []) and (cut or len(ids) == sampling.max_new_tokens)


def test_sampling_draws_the_filtered_tempered_distribution():
    torch.manual_seed(0)
    logits = torch.randn(1, 20) * 2
    settings_ = dict(temperature=0.7, top_p=0.8, top_k=6, greedy=False)
    scaled = logits[0] / settings_["temperature"]
    kept = torch.topk(scaled, 6).indices
    probs = torch.softmax(scaled[kept], dim=0)
    kept = kept[(probs.cumsum(0) - probs) < settings_["top_p"]]
    expected = torch.zeros(20)
    expected[kept] = torch.softmax(scaled[kept], dim=0)
    draws = 40000
    generator = torch.Generator().manual_seed(1)
    tokens, logprobs = sample_tokens(logits.expand(draws, -1), torch.rand((draws, 6), generator=generator),
                                     **settings_)
    frequencies = torch.bincount(tokens, minlength=20).float() / draws
    assert (frequencies - expected).abs().max() < 0.01
    torch.testing.assert_close(logprobs, torch.log_softmax(scaled, 0)[tokens])


def test_sampling_with_the_same_seed_replays_and_a_long_prompt_is_one_clear_error():
    model = tiny_model()
    sampling = replace(Sampling(), greedy=False)
    replies = [FastGenerator(model, sampling, slots=5, capacity=64, compile=False, seed=7).generate(prompts())
               for _ in range(2)]
    assert replies[0] == replies[1]
    with pytest.raises(ValueError, match="positions; the slots hold"):
        FastGenerator(model, sampling, slots=2, capacity=16, compile=False).generate([list(range(2, 30))])


def test_decoders_with_other_attention_layers_are_refused():
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, use_sliding_window=True,
                         sliding_window=8, max_window_layers=1)
    model = Qwen3ForCausalLM(config).eval()
    assert "sliding_attention" in model.config.layer_types
    with pytest.raises(ValueError, match="full attention only"):
        FastDecoder(model, slots=2, capacity=16, sampling=Sampling(), compile=False)
