"""Fast batched decoding for the lockstep engine: resident KV slots, a captured step, sampling on the device.

``ModelPolicy`` decodes with transformers' caches, which is right on a CPU
and for any architecture.  On a GPU at a few hundred rows, decoding is bound
by reading the weights and the keys/values once per step, and the stock path
loses most of that bandwidth: a growing cache copies itself every step, the
stock SDPA attention repeats the grouped K/V heads whenever there is a
padding mask, and hundreds of small kernel launches per step leave the GPU
idle.  This module removes those costs for plain full-attention decoders
(``SUPPORTED_MODEL_TYPES``):

- **Resident slots** (``SlotCache``): one preallocated key/value row per
  episode, kept across the episode's decisions.  An episode's next prompt
  extends its previous prompt and reply, so only the tokens after the longest
  common prefix with what the slot holds are run; rolling back is free (the
  slot's length just shrinks).  A row's tokens sit at positions 0..n-1 of its
  slot, so there is no left padding and the position of a token is its slot
  index.
- **Grouped attention without copies** (``grouped_attention``, registered
  through transformers' ``AttentionInterface`` under ``GROUPED_ATTENTION``):
  the query heads that share a K/V head are folded into the query length, so
  SDPA reads each K/V head once, with any mask.  Without a ``slot_cache``
  argument it is transformers' own SDPA attention, so a model switched to it
  behaves exactly as before everywhere else (training, ``generate``).
- **One captured step**: the decode step (forward of one token per slot and
  sampling) runs over every slot with static shapes, so it is compiled with
  ``torch.compile(mode="reduce-overhead")`` into a CUDA graph; finished and
  idle slots write to a scratch column that no real token attends to.  A
  call's attention reads only the slots' first columns its longest row needs,
  rounded up to 256 times a power of two (one graph per such width).
- **Sampling on the device**: ``sepo.policies.decoding.sample_tokens``, the
  one sampling function both decode loops use (a Gumbel-max draw with
  uniforms from a seeded generator, so the captured step is a pure function).
- **Per-row stop on the host every few steps**: ``sepo.policies.decoding.StopRule``,
  the standard loop's rule; a row's reply is cut at its exact stop step, so
  checking every ``check_every`` steps changes the cost, not the replies.
  Decoding ends when every row has stopped.

Memory: the cache holds ``slots x (capacity + 1)`` tokens of keys and values
for every layer (Qwen3-4B: 144 KiB a token in bf16), allocated once.

Wiring: ``ModelPolicy.use_fast_decoder`` puts a ``FastGenerator`` next to
the model and routes ``ModelPolicy.generate`` through it (in chunks of the
slot count; a decision too long for a slot takes the standard loop) and
``ModelPolicy.forget`` frees the slots; ``load_model_policy`` does so per
``generation.fast_decode`` (``auto``: on CUDA for ``SUPPORTED_MODEL_TYPES``),
so evaluation, ``sft_validity`` and ``sepo evaluate`` use it on a GPU.
GRPO rollouts still sample through the standard loop: their policy is
rebuilt around the training model at every step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from sepo.policies.decoding import Sampler, SamplingSettings, StopRule, noise_width, sample_tokens
from sepo.policies.prefix import shared_length

__all__ = ["FastDecoder", "FastGenerator", "SlotCache", "grouped_attention", "grouped_sdpa", "noise_width",
           "register_grouped_attention", "sample_tokens", "supports"]

GROUPED_ATTENTION = "sepo_grouped_sdpa"
#: decoders whose layers are all full attention through ``AttentionInterface`` and whose logits are the
#: plain output projection of the last hidden state (no soft-capping)
SUPPORTED_MODEL_TYPES = ("qwen3", "qwen2", "llama")
_ALIGN = 16  # memory-efficient SDPA wants the key length a multiple of this


# -- attention ----------------------------------------------------------------------------------
def grouped_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                 scaling: float | None) -> torch.Tensor:
    """SDPA over grouped K/V heads without repeating them; query (B, H, Q, D), key/value (B, KVH, L, D).

    The G = H / KVH query heads of one K/V head (transformers' ``repeat_kv``
    order: head h uses K/V head h // G) become G x Q query rows of that K/V
    head.  ``mask`` is boolean (B, 1, Q, L), True where a query may attend.
    Returns (B, H, Q, D).
    """
    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    folded = query.reshape(batch, kv_heads, groups * length, dim)
    if length > 1:
        mask = mask[:, :, None].expand(-1, -1, groups, -1, -1).reshape(batch, 1, groups * length, -1)
    out = F.scaled_dot_product_attention(folded, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, heads, length, dim)


def grouped_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs) -> tuple[torch.Tensor, None]:
    """The ``AttentionInterface`` function: slot-cache attention when called with ``slot_cache``, else SDPA.

    With ``slot_cache`` (a ``SlotCache``), ``slot_rows`` (slot of each batch
    row, None for all slots in order), ``slot_positions`` (B, Q) and
    ``slot_window`` (W), the new keys/values are written into the slots and
    the queries attend over the slots' first W columns under
    ``attention_mask`` (B, 1, Q, W).
    """
    cache: SlotCache | None = kwargs.get("slot_cache")
    if cache is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    rows, positions, window = kwargs.get("slot_rows"), kwargs["slot_positions"], kwargs["slot_window"]
    keys, values = cache.write(module.layer_idx, key, value, rows, positions, window)
    out = grouped_sdpa(query, keys, values, attention_mask, scaling)
    return out.transpose(1, 2).contiguous(), None


def register_grouped_attention() -> str:
    """Register ``grouped_attention`` (and SDPA's mask builder for it) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(GROUPED_ATTENTION, grouped_attention)
    AttentionMaskInterface.register(GROUPED_ATTENTION, sdpa_mask)
    return GROUPED_ATTENTION


def supports(model: torch.nn.Module) -> bool:
    """True for the decoders this path is exact for: plain full attention, no logit soft-capping."""
    config = model.config
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    return (config.model_type in SUPPORTED_MODEL_TYPES and layer_types == {"full_attention"}
            and not getattr(config, "final_logit_softcapping", None))


# -- cache --------------------------------------------------------------------------------------
class SlotCache:
    """Per layer, keys and values of shape (slots, kv heads, capacity + 1 rounded up, head dim).

    Position ``scratch`` (the last column) is where padding and finished rows
    write; a real token at position p attends to columns 0..p only, so it
    never sees the scratch column.  A call reads only the first ``window``
    columns, enough for its longest row.
    """

    def __init__(self, config, slots: int, capacity: int, dtype: torch.dtype, device: torch.device) -> None:
        kv_heads = config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.slots = slots
        self.length = -(-(capacity + 1) // _ALIGN) * _ALIGN
        self.scratch = self.length - 1
        self.capacity = self.scratch  # positions 0..capacity-1 hold real tokens
        shape = (slots, kv_heads, self.length, head_dim)
        layers = range(config.num_hidden_layers)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in layers]
        self.all_rows = torch.arange(slots, device=device)
        for tensor in (*self.keys, *self.values, self.all_rows):
            torch._dynamo.mark_static_address(tensor)  # mutated inside the CUDA graph, never reallocated

    def write(self, layer: int, key: torch.Tensor, value: torch.Tensor, rows: torch.Tensor | None,
              positions: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store key/value (B, KVH, Q, D) of slots ``rows`` at ``positions`` (B, Q); their first columns."""
        keys, values = self.keys[layer], self.values[layer]
        index = (self.all_rows if rows is None else rows)[:, None]
        # detached: a write with grad on would give the resident tensors an autograd history that every
        # later write extends, keeping each call's activations alive for as long as the cache lives
        keys[index, :, positions] = key.detach().transpose(1, 2)
        values[index, :, positions] = value.detach().transpose(1, 2)
        if rows is None:
            return keys[:, :, :window], values[:, :, :window]
        return keys[rows, :, :window], values[rows, :, :window]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


# -- decoding -----------------------------------------------------------------------------------
class FastDecoder:
    """The model's forward over a ``SlotCache``: prefill of new tokens per slot, and the all-slot step.

    ``compile`` (default: on CUDA) captures ``step_all`` with
    ``torch.compile(mode="reduce-overhead")``; its first calls compile and
    record the graph (tens of seconds for a 4B model), later ones replay it.

    ``prefill``, ``step`` and ``step_rows`` run in inference mode whoever
    calls them: the model's parameters usually require grad (a trainer's
    policy, a freshly built model), and with grad on a 256 x 300-token
    prefill of a 4B model would save hundreds of GiB of activations.
    """

    def __init__(self, model: torch.nn.Module, slots: int, capacity: int, sampling: SamplingSettings,
                 compile: bool | None = None, prefill_tokens: int = 16384) -> None:
        if not supports(model):
            raise ValueError(f"fast decoding supports {', '.join(SUPPORTED_MODEL_TYPES)} decoders with full "
                             f"attention only, not {model.config.model_type!r}")
        parameter = next(model.parameters())
        self.model = model  # the caller chooses eval mode (dropout off); a trainer's model stays as it is
        self.model.set_attn_implementation(register_grouped_attention())
        self.device = parameter.device
        self.cache = SlotCache(model.config, slots, capacity, parameter.dtype, self.device)
        self.sampling = sampling
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.prefill_tokens = prefill_tokens
        self.compiled = self.device.type == "cuda" if compile is None else compile
        self._step = (torch.compile(self.step_all, mode="reduce-overhead", dynamic=False, fullgraph=False)
                      if self.compiled else self.step_all)
        self._columns = torch.arange(self.cache.length, device=self.device)

    def window_for(self, end: int) -> int:
        """Columns a call reads to see positions below ``end``: 256 times a power of two, at most all.

        Attention reads every column it is given, so a call reads no more than
        twice what its rows need; the few distinct widths bound the number of
        graphs compiled.
        """
        window = 256
        while window < end:
            window *= 2
        return min(window, self.cache.length)

    def _mask(self, positions: torch.Tensor, window: int) -> torch.Tensor:
        """(B, 1, Q, W): a token at position p sees columns 0..p (transformers passes a 4D mask on as is)."""
        return self._columns[None, None, None, :window] <= positions[:, None, :, None]

    def logits(self, input_ids: torch.Tensor, positions: torch.Tensor, rows: torch.Tensor | None,
               last: torch.Tensor, window: int) -> torch.Tensor:
        """Float32 logits after token ``last[b]`` of each row, writing every token's keys/values."""
        hidden = self.model.get_decoder()(
            input_ids=input_ids, position_ids=positions, attention_mask=self._mask(positions, window),
            use_cache=False, slot_cache=self.cache, slot_rows=rows, slot_positions=positions,
            slot_window=window).last_hidden_state
        picked = hidden[torch.arange(len(hidden), device=self.device), last]
        return self.model.get_output_embeddings()(picked).float()

    @torch.inference_mode()
    def prefill(self, rows: Sequence[int], sequences: Sequence[Sequence[int]], starts: Sequence[int],
                pad_id: int = 0, window: int | None = None) -> torch.Tensor:
        """Write ``sequences[i]`` into slot ``rows[i]`` from ``starts[i]`` on; float32 logits after each.

        Rows run right-padded, in chunks of about ``prefill_tokens`` tokens;
        padding writes to the scratch column.
        """
        if window is None:
            window = self.window_for(max(s + len(seq) for s, seq in zip(starts, sequences, strict=True)))
        out = []
        order = sorted(range(len(rows)), key=lambda i: len(sequences[i]))  # similar lengths share a chunk
        begin = 0
        while begin < len(order):
            end = begin + 1
            while end < len(order) and (end - begin + 1) * len(sequences[order[end]]) <= self.prefill_tokens:
                end += 1
            chunk = order[begin:end]
            width = max(len(sequences[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            positions = torch.full((len(chunk), width), self.cache.scratch, dtype=torch.long)
            for j, i in enumerate(chunk):
                n = len(sequences[i])
                input_ids[j, :n] = torch.tensor(sequences[i], dtype=torch.long)
                positions[j, :n] = torch.arange(starts[i], starts[i] + n)
            last = torch.tensor([len(sequences[i]) - 1 for i in chunk], device=self.device)
            slot_rows = torch.tensor([rows[i] for i in chunk], device=self.device)
            input_ids, positions = input_ids.to(self.device), positions.to(self.device)
            logits = self.logits(input_ids, positions, slot_rows, last, window)
            out.append((chunk, logits))
            begin = end
        logits = torch.empty((len(rows), self.vocab_size), dtype=torch.float32, device=self.device)
        for chunk, chunk_logits in out:
            logits[torch.tensor(chunk, device=self.device)] = chunk_logits
        return logits

    def sample(self, logits: torch.Tensor, uniform: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sampling
        return sample_tokens(logits, uniform, s.temperature, s.top_p, s.top_k, s.greedy)

    def step_all(self, tokens: torch.Tensor, positions: torch.Tensor, uniform: torch.Tensor | None,
                 window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One token for every slot: feed ``tokens`` (S,) at ``positions`` (S,), sample the next."""
        zero = torch.zeros_like(tokens)
        logits = self.logits(tokens[:, None], positions[:, None], None, zero, window)
        return self.sample(logits, uniform)

    @torch.inference_mode()
    def step_rows(self, rows: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor,
                  uniform: torch.Tensor | None, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The same for a few slots (eager: the graph is recorded for all slots)."""
        logits = self.logits(tokens[:, None], positions[:, None], rows, torch.zeros_like(tokens), window)
        return self.sample(logits, uniform)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, uniform: torch.Tensor | None,
             window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``step_all`` through the compiled graph (one per window) when compiling; outputs are fresh."""
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()
            next_tokens, logprobs = self._step(tokens, positions, uniform, window)
            # the graph's outputs are overwritten by its next replay
            return next_tokens.clone(), logprobs.clone()
        return self._step(tokens, positions, uniform, window)


class FastGenerator:
    """``ModelPolicy.generate`` on a ``FastDecoder``: (ids, log-probs) per prompt, each row stopping alone.

    Each ``cache_key`` (one per episode) owns a slot while its episode runs;
    a key of None gets a slot for this call only.  When more keys are live
    than there are slots, the least recently used ones not in the call lose
    theirs (their next decision recomputes the prefix).

    Stop rule: ``stop`` (``ModelPolicy`` passes its own), else one built
    from ``stop_ids``, ``newline_ids`` and ``is_complete``; also
    ``max_new_tokens``.  Checked on the host every ``check_every`` steps; each
    reply is cut at its exact stop step.
    """

    def __init__(self, model: torch.nn.Module, sampling: SamplingSettings, *, slots: int, capacity: int,
                 stop_ids: set[int] | frozenset[int] = frozenset(), newline_ids: frozenset[int] = frozenset(),
                 is_complete: Callable[[list[int]], bool] | None = None, stop: StopRule | None = None, seed: int = 0,
                 compile: bool | None = None, check_every: int = 8, pad_id: int = 0) -> None:
        self.decoder = FastDecoder(model, slots, capacity, sampling, compile=compile)
        self.sampling = sampling
        self.stop = stop or StopRule(frozenset(stop_ids), frozenset(newline_ids), is_complete)
        self.check_every = check_every
        self.pad_id = pad_id
        self.device = self.decoder.device
        self.sampler = Sampler(sampling, seed, self.device)
        self._slot_of: OrderedDict[Hashable, int] = OrderedDict()  # live keys, least recently used first
        self._free = list(range(slots))
        self._held: list[list[int]] = [[] for _ in range(slots)]  # token ids whose keys/values a slot holds

    @property
    def slots(self) -> int:
        return self.decoder.cache.slots

    def forget(self, cache_keys: Sequence[Hashable]) -> None:
        """Free the slots of episodes that ended."""
        for key in cache_keys:
            slot = self._slot_of.pop(key, None)
            if slot is not None:
                self._release(slot)

    def _release(self, slot: int) -> None:
        self._held[slot] = []
        self._free.append(slot)

    def _assign(self, keys: Sequence[Hashable | None]) -> list[int]:
        if len(keys) > self.slots:
            raise ValueError(f"{len(keys)} decisions in one call but only {self.slots} slots")
        wanted = {k for k in keys if k is not None}
        rows = []
        for key in keys:
            if key is not None and key in self._slot_of:
                self._slot_of.move_to_end(key)
                rows.append(self._slot_of[key])
                continue
            if not self._free:  # evict the least recently used episode that is not deciding now
                victim = next(k for k in self._slot_of if k not in wanted)
                self._release(self._slot_of.pop(victim))
            slot = self._free.pop()
            if key is not None:
                self._slot_of[key] = slot
            rows.append(slot)
        return rows

    def _uniform(self, rows: int) -> torch.Tensor | None:
        return self.sampler.uniform(rows, self.decoder.vocab_size)

    @torch.inference_mode()
    def generate(self, prompt_ids: Sequence[Sequence[int]],
                 cache_keys: Sequence[Hashable | None] | None = None) -> list[tuple[list[int], list[float]]]:
        """(generated ids, their log-probs) per prompt; see the class doc for the stop rule."""
        if not prompt_ids:
            return []
        keys = list(cache_keys) if cache_keys is not None else [None] * len(prompt_ids)
        limit = self.sampling.max_new_tokens
        rows = self._assign(keys)
        starts = [min(shared_length(self._held[r], seq), len(seq) - 1) for r, seq in zip(rows, prompt_ids,
                                                                                          strict=True)]
        needed = max(len(seq) for seq in prompt_ids) + limit - 1
        if needed > self.decoder.cache.capacity:
            raise ValueError(f"a prompt plus {limit} new tokens needs {needed} positions; the slots hold "
                             f"{self.decoder.cache.capacity} (raise the fast decoder's capacity)")
        new_tokens = [seq[s:] for seq, s in zip(prompt_ids, starts, strict=True)]
        window = self.decoder.window_for(needed)
        logits = self.decoder.prefill(rows, new_tokens, starts, self.pad_id, window)
        tokens, logprobs = self.decoder.sample(logits, self._uniform(len(rows)))
        generated = torch.empty((len(rows), limit), dtype=torch.long, device=self.device)
        generated_logprobs = torch.empty((len(rows), limit), dtype=torch.float32, device=self.device)
        generated[:, 0], generated_logprobs[:, 0] = tokens, logprobs
        row_index = torch.tensor(rows, device=self.device)
        positions = torch.tensor([len(seq) for seq in prompt_ids], device=self.device)
        all_slots = self.decoder.compiled or 2 * len(rows) >= self.slots
        if all_slots:  # every slot steps; those not in this call feed padding into the scratch column
            slot_tokens = torch.full((self.slots,), self.pad_id, dtype=torch.long, device=self.device)
            slot_positions = torch.full((self.slots,), self.decoder.cache.scratch, dtype=torch.long,
                                        device=self.device)
            slot_positions[row_index] = positions
        stops: list[int | None] = [None] * len(rows)
        host: list[list[int]] = [[] for _ in rows]
        steps = 1
        while steps < limit:
            if steps % self.check_every == 0 and self._check(generated, steps, host, stops):
                break
            if all_slots:
                slot_tokens[row_index] = tokens
                uniform = self._uniform(self.slots)
                next_all, logprobs_all = self.decoder.step(slot_tokens, slot_positions, uniform, window)
                tokens, logprobs = next_all[row_index], logprobs_all[row_index]
                slot_positions[row_index] += 1
            else:
                uniform = self._uniform(len(rows))
                tokens, logprobs = self.decoder.step_rows(row_index, tokens, positions, uniform, window)
                positions += 1
            generated[:, steps], generated_logprobs[:, steps] = tokens, logprobs
            steps += 1
        self._check(generated, steps, host, stops)
        all_logprobs = generated_logprobs[:, :steps].tolist()
        out = []
        for i, (row, seq) in enumerate(zip(rows, prompt_ids, strict=True)):
            end = steps if stops[i] is None else stops[i] + 1
            ids = host[i][:end]
            out.append((ids, all_logprobs[i][:end]))
            if keys[i] is None:
                self._release(row)
            else:  # its keys/values cover the prompt and every kept token but the last
                self._held[row] = list(seq) + ids[:-1]
        return out

    def _check(self, generated: torch.Tensor, steps: int, host: list[list[int]],
               stops: list[int | None]) -> bool:
        """Bring the new tokens to the host and find stops; True when every row has stopped."""
        done = len(host[0]) if host else 0
        fresh = generated[:, done:steps].tolist()
        for i, new in enumerate(fresh):
            host[i].extend(new)
            if stops[i] is None:
                stops[i] = self.stop.stop_step(host[i], done)
        return all(stop is not None for stop in stops)
