"""Keys and values kept across decisions, and the prefill that starts every decode and every scoring.

Why keep them: in a multi-turn episode every prompt extends the previous
prompt and reply, so the keys/values computed for an episode's chat are
kept under the request's ``cache_key`` and only the new tokens (the longest
common token prefix decides) are run at its next decision.  Without it the
prompt, which grows every round, would dominate the cost and batching could
not help.  Likewise the keys/values of each distinct system turn (a domain's
rules, shared by all its episodes) are kept for the policy's lifetime, so an
episode's first decision runs only its first state.

Which caches: reuse needs a cache whose every layer is plain full attention
(``DynamicLayer``): a row's keys/values are then one slice of its columns
that can be cut out and joined to other rows'.  A sliding-window layer has
dropped its early columns, a linear-attention layer (Qwen3.5) holds a
recurrent state that cannot be rolled back to a common prefix, and a
key/value-sharing layer (Gemma 4's ``DummyLayer``) holds nothing; for those
models every prompt is run whole (``reuses_prefixes`` False) through
transformers' own cache built from the model's config, and rows are
selected or repeated only through the public ``Cache.reorder_cache``, which
every transformers layer type implements.  A cache that cannot even do that
is never sliced: the callers then keep finished rows or recompute.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer

from sepo.policies.prefix import shared_length


@dataclass
class CachedPrefix:
    """Token ids an episode's chat has been run through, and their keys/values per layer."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (kv heads, len(ids), head dim) each


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer in a preallocated buffer; attention reads only its filled columns.

    ``DynamicLayer`` copies all of itself at every decode step (``torch.cat``)
    and ``StaticLayer`` makes attention read its whole capacity; on a CPU,
    where decoding a big batch is bound by memory traffic, both cost more
    than the model.  ``keys``/``values`` are views of the filled part.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.is_initialized = True
        self._keys, self._values, self.length = keys, values, length
        self._expose()

    def _expose(self) -> None:
        self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args,
               **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._expose()

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        self.batch_select_indices(beam_idx.to(self._keys.device))


def plain_full_attention(model) -> bool:
    """True if every layer of the model's cache is a plain ``DynamicLayer`` (prefixes can be sliced)."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


def can_select_rows(cache: Cache) -> bool:
    """True if every layer of ``cache`` can keep or repeat batch rows (``reorder_cache``)."""
    return all(callable(getattr(layer, "reorder_cache", None)) for layer in cache.layers)


def select_rows(cache: Cache, index: torch.Tensor) -> None:
    """Keep (or repeat) the cache's batch rows ``index`` in place, whatever its layer types."""
    cache.reorder_cache(index)


def rows_of(cache: Cache, rows: torch.Tensor, config) -> Cache | None:
    """A new cache holding rows ``rows`` of ``cache`` (repeats allowed); None if it cannot be sliced.

    Plain full-attention caches are sliced layer by layer (one copy of the
    rows); any other cache is copied whole and then reordered through the
    public ``reorder_cache``, which is right for linear-attention states,
    sliding windows and shared-KV layers alike.
    """
    if all(type(layer) in (DynamicLayer, GrowingLayer) for layer in cache.layers):
        return DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers], config=config)
    if not can_select_rows(cache):
        return None
    copied = copy.deepcopy(cache)
    copied.reorder_cache(rows)
    return copied


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices by descending length, cut where one is under 3/4 of its group's first (longest).

    A batched forward pads every row to its longest; grouping similar
    lengths keeps that padding under a quarter, for a few more calls.
    """
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True):
        if groups and 4 * lengths[i] >= 3 * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class PrefixCache:
    """The kept keys/values of a model (per episode, per system turn) and the prefills that use them.

    ``reuses_prefixes`` (default: ``plain_full_attention``) may be turned
    off to run every prompt whole; results do not change, only the cost.
    """

    def __init__(self, model, tokenizer, room: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.room = room  # decode columns preallocated after a prefill (max_new_tokens)
        self.device = next(model.parameters()).device
        self.reuses_prefixes = plain_full_attention(model)
        self.episodes: dict[Hashable, CachedPrefix] = {}
        self.system_turns: dict[str, CachedPrefix | None] = {}  # rendered system turn -> its keys/values

    def forget(self, cache_keys: Sequence[Hashable]) -> None:
        for key in cache_keys:
            self.episodes.pop(key, None)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def prefixes_for(self, keys: Sequence[Hashable | None], heads: Sequence[str | None]) -> list[CachedPrefix | None]:
        """Per row, the cached keys/values its prompt may start with: its episode's, else its system turn's."""
        if not self.reuses_prefixes:
            return [None] * len(keys)
        own = [self.episodes.get(key) if key is not None else None for key in keys]
        missing = sorted({head for head, prefix in zip(heads, own, strict=True)
                          if prefix is None and head is not None and head not in self.system_turns})
        if missing:
            head_ids = self.encode_batch(missing)
            cache, attention, _ = self.prefill(head_ids, [None] * len(missing))
            for row, (head, sequence) in enumerate(zip(missing, head_ids, strict=True)):
                self.system_turns[head] = snapshot(sequence, cache, row, attention[row])
        return [prefix or (self.system_turns.get(head) if head is not None else None)
                for prefix, head in zip(own, heads, strict=True)]

    def remember(self, key: Hashable | None, ids: list[int], cache: Cache, row: int,
                 attention: torch.Tensor) -> None:
        """Keep row ``row``'s keys/values for the episode's next decision."""
        if key is None or not self.reuses_prefixes:
            return
        prefix = snapshot(ids, cache, row, attention)
        if prefix is not None:
            self.episodes[key] = prefix

    def prefill_for_decoding(self, sequences: Sequence[Sequence[int]], prefixes: Sequence[CachedPrefix | None]
                             ) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """``prefill`` by groups of similar uncached length, joined into one preallocated decode cache.

        Each row's keys/values end at the same column, followed by room for
        ``room`` new tokens; models without plain full attention take one
        ``prefill`` and transformers' own cache.
        """
        if not self.reuses_prefixes:
            return self.prefill(sequences, prefixes)
        uncached = [len(seq) - reusable(prefix, seq) for seq, prefix in zip(sequences, prefixes, strict=True)]
        parts = []
        for group in length_groups(uncached):
            parts.append((torch.tensor(group, device=self.device),
                          *self.prefill([sequences[i] for i in group], [prefixes[i] for i in group])))
        width = max(attention.shape[1] for _, _, attention, _ in parts)
        attention = torch.zeros((len(sequences), width), dtype=torch.long, device=self.device)
        logits = parts[0][3].new_empty((len(sequences), parts[0][3].shape[-1]))
        layers = []
        for layer in parts[0][1].layers:
            shape = (len(sequences), layer.keys.shape[1], width + self.room, layer.keys.shape[-1])
            joined = GrowingLayer(layer.keys.new_empty(shape), layer.values.new_empty(shape), width)
            joined.keys.zero_()  # padding columns are masked, but garbage there could be NaN, which masks do not stop
            joined.values.zero_()
            layers.append(joined)
        for index, cache, part_attention, part_logits in parts:
            start = width - part_attention.shape[1]
            attention[index, start:] = part_attention
            logits[index] = part_logits
            for joined, layer in zip(layers, cache.layers, strict=True):
                joined._keys[index, :, start:width] = layer.keys
                joined._values[index, :, start:width] = layer.values
        cache = DynamicCache(config=self.model.config)
        cache.layers = layers
        return cache, attention, logits

    def prefill(self, sequences: Sequence[Sequence[int]], prefixes: Sequence[CachedPrefix | None]
                ) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """Run ``sequences`` left-padded: (their cache, attention mask, logits after the last token).

        A row whose leading tokens are cached in its prefix takes their
        keys/values from there and runs only the rest; the batch runs as
        many new tokens as its longest uncached part (rows with less take
        that many from their cached tail instead), so the cached block and
        the new tokens meet at one column for every row: each row's tokens
        are the last columns of its mask, one run without gaps.
        """
        cached = [reusable(prefix, seq) for prefix, seq in zip(prefixes, sequences, strict=True)]
        width = max(len(seq) - n for seq, n in zip(sequences, cached, strict=True))
        from_cache = [max(0, len(seq) - width) for seq in sequences]
        cached_width = max(from_cache)
        input_ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(sequences), cached_width + width), dtype=torch.long)
        for row, (seq, n) in enumerate(zip(sequences, from_cache, strict=True)):
            tail = list(seq[n:])
            if tail:
                input_ids[row, width - len(tail):] = torch.tensor(tail)
            attention[row, cached_width + width - len(tail):] = 1
            attention[row, cached_width - n:cached_width] = 1
        sources = [(row, prefixes[row].layers, n) for row, n in enumerate(from_cache) if n]
        past = []
        for layer in range(len(sources[0][1]) if sources else 0):
            first_keys, first_values = sources[0][1][layer]
            shape = (len(sequences), first_keys.shape[0], cached_width, first_keys.shape[-1])
            past_keys, past_values = first_keys.new_zeros(shape), first_values.new_zeros(shape)
            for row, layers, n in sources:
                past_keys[row, :, cached_width - n:] = layers[layer][0][:, :n]
                past_values[row, :, cached_width - n:] = layers[layer][1][:, :n]
            past.append((past_keys, past_values))
        attention = attention.to(self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)[:, cached_width:]
        cache = DynamicCache(past or None, config=self.model.config)
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention,
                            position_ids=positions, cache=cache, use_cache=True,
                            logits_to_keep=1).logits[:, -1, :].float()
        return cache, attention, logits


def reusable(prefix: CachedPrefix | None, sequence: Sequence[int]) -> int:
    """How many leading tokens of ``sequence`` have keys/values in ``prefix`` (at least one is left to run)."""
    if prefix is None:
        return 0
    return min(shared_length(prefix.ids, sequence), len(sequence) - 1)


def snapshot(ids: Sequence[int], cache: Cache, row: int, attention: torch.Tensor) -> CachedPrefix | None:
    """Row ``row``'s keys/values without its padding, if they are exactly those of ``ids``.

    A row's tokens fill the last columns of its mask (see ``PrefixCache.prefill``),
    so they are one slice, copied so as not to hold the batch's cache.
    """
    end = len(attention)
    start = end - len(ids)
    if start < 0 or int(attention[start:].sum()) != len(ids):
        return None
    layers = [(layer.keys[row, :, start:end].clone(), layer.values[row, :, start:end].clone())
              for layer in cache.layers]
    return CachedPrefix(list(ids), layers)
