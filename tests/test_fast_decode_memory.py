"""The fast decoder keeps no memory between calls: same slot buffers, no autograd history, no growth.

The H100 run of ``benchmarks/gpu_rollout.py`` (attempt 1) ran out of memory
on a prefill called outside ``generate`` with grad on: the model's
parameters require grad, so the forward saved its activations, and the
in-place writes into the resident slots gave them an autograd history that
every later write extended.  These checks use a model whose parameters
require grad, as a trainer's policy and the benchmark's model do.
"""

from __future__ import annotations

import gc

import torch

from sepo.policies.fast_decode import FastGenerator
from tests.test_fast_decode import Sampling, prompts, tiny_model


def live_tensors() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def test_repeated_calls_reuse_the_slot_buffers_and_save_nothing_for_backward():
    model = tiny_model()
    assert all(p.requires_grad for p in model.parameters())
    generator = FastGenerator(model, Sampling(greedy=False), slots=5, capacity=64, compile=False)
    cache = generator.decoder.cache
    pointers = [t.data_ptr() for t in (*cache.keys, *cache.values)]
    batch = prompts()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        generator.generate(batch)  # warm-up, as the benchmark's
        gc.collect()
        before = live_tensors()
        for call in range(4):
            generator.generate(batch, cache_keys=[(call, i) for i in range(len(batch))])
            generator.forget([(call, i) for i in range(len(batch))])
            generator.decoder.prefill(range(len(batch)), batch, [0] * len(batch))  # grad is on here
        gc.collect()
        after = live_tensors()
    assert saved == []  # no activations kept for a backward pass
    assert [t.data_ptr() for t in (*cache.keys, *cache.values)] == pointers
    assert not any(t.requires_grad or t.grad_fn is not None for t in (*cache.keys, *cache.values))
    assert after <= before


def test_a_direct_forward_with_grad_on_leaves_the_cache_without_history():
    model = tiny_model()
    generator = FastGenerator(model, Sampling(), slots=2, capacity=32, compile=False)
    decoder = generator.decoder
    positions = torch.arange(4)[None].expand(2, -1)
    logits = decoder.logits(torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]]), positions, None,
                            torch.tensor([3, 3]), decoder.window_for(4))
    assert logits.requires_grad  # the caller asked for grad and gets it...
    assert not any(t.requires_grad for t in (*decoder.cache.keys, *decoder.cache.values))  # ...the cache not
