"""A language-model policy behind the batched ``AgentPolicy`` interface.

``ModelPolicy.decide`` renders each request's chat with the tokenizer's chat
template (``add_generation_prompt``), samples every reply of the batch in one
hand-written decode loop with a KV cache, parses it with the domain parser
and applies SPEC section 2's constrained fallback when nothing legal is found.

Why a hand-written loop rather than ``generate``: a batch of ``generate``
runs until its longest sample stops, so one runaway reply makes every row pay
for every step.  Here each row stops as soon as its reply is complete (an
end-of-turn token, or a finished ``Action: X`` line): it is no longer
sampled, and finished rows are dropped from the batch and from the cache
once they are a quarter of it (one copy of the cache per few rows, not per
row).  Per-decision token caps stay tight (``max_new_tokens``).  Across the
decisions of an episode the keys and values of its chat are kept and reused
(see ``ModelPolicy``), episodes with the same system message share its keys
and values, the new tokens are run in groups of similar length (little
padding), and the decode cache is preallocated and read only as far as it
is filled, so a step costs one pass over each row's new tokens.

Exact choices, written down because results depend on them:

- Sampling: logits / temperature, then top-k, then top-p (nucleus, the
  smallest set whose probability reaches top_p), from one ``torch.Generator``
  seeded at construction; ``greedy`` takes the arg-max instead.
- Stop rule: a row stops at an end-of-sequence id of the tokenizer or the
  generation config or any special added token (a reply never holds a turn
  marker: a model that writes ``<|im_start|>`` has run into the next turn),
  at ``max_new_tokens``, or when a line of the reply that ends in a newline
  is an ``Action:`` line with a value.  Inside an unclosed
  ``<think>`` block no ``Action:`` line stops the row (the parser only reads
  text after ``</think>``).
- Reply text: the generated tokens decoded without special tokens, trailing
  whitespace stripped.  ``extras`` holds ``token_ids`` (every generated id,
  the stop token included) and ``logprobs`` (their log-probabilities under
  the temperature-scaled distribution before top-k/top-p, TRL's convention;
  temperature 1 when greedy).
- Constrained fallback (invalid replies): the context is the prompt, the
  reply text and a newline (no newline after an empty reply); each legal
  action X is scored by the sum of the log-probabilities of the tokens of
  ``context + "Action: " + X`` that follow their common prefix with
  ``context + "Action:"`` (the text is tokenized as a whole, so the space
  joins the action's first token exactly as in training).  The highest score
  wins; ties go to the first legal action.
- GPU decoding: ``use_fast_decoder`` switches ``generate`` to the
  resident-slot loop of ``sepo.policies.fast_decode`` (same stop rule,
  same ``(ids, logprobs)``, same sampling distribution; its own seeded
  stream, so sampled replies differ from this loop's while greedy ones are
  equal).  Decisions whose prompt plus ``max_new_tokens`` exceed a slot
  take this loop.  Scoring (fallback, ``action_probabilities``) always
  runs here.
- ``action_probabilities``: the same scores with the reply empty (the
  prompt followed directly by ``Action: X``), normalised over the legal
  actions.  The actions of every domain are such that none is a token prefix
  of another, so no end-of-line term is needed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer

from sepo.config import Params
from sepo.games.parsing import _ACTION_LINE, ACTION_PREFIX, parse_action
from sepo.policies.prefix import shared_length
from sepo.rollout import AgentReply, DecisionRequest, Message

if TYPE_CHECKING:
    from sepo.policies.fast_decode import FastGenerator

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class SamplingSettings:
    """How replies are sampled; defaults are the paper's (SPEC section 5), the tiny profile caps tokens lower."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50  # 0 turns top-k off
    max_new_tokens: int = 512
    greedy: bool = False


def _select_rows(cache: Cache, index: torch.Tensor) -> None:
    """Keep (or repeat) the cache's batch rows ``index``, whatever its layers."""
    for layer in cache.layers:
        layer.batch_select_indices(index)


def _length_groups(lengths: Sequence[int]) -> list[list[int]]:
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


class _GrowingLayer(DynamicLayer):
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


def reply_is_complete(text: str) -> bool:
    """True once a finished line of ``text`` is an ``Action:`` line with a value (outside ``<think>``)."""
    if _THINK_OPEN in text and _THINK_CLOSE not in text:
        return False
    answer = text.rsplit(_THINK_CLOSE, 1)[-1]
    finished_lines = answer.split("\n")[:-1]
    for line in finished_lines:
        match = _ACTION_LINE.match(line)
        if match and match.group(1).strip():
            return True
    return False


@dataclass
class _CachedPrefix:
    """Token ids an episode's chat has been run through, and their keys/values per layer."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (kv heads, len(ids), head dim) each


class ModelPolicy:
    """An agent that is a causal LM and its tokenizer (any Hugging Face checkpoint).

    Per-episode prefix reuse: in a multi-turn episode every prompt extends the
    previous prompt and reply, so the keys/values computed for an episode's
    chat are kept under the request's ``cache_key`` and only the new tokens
    (the longest common token prefix decides) are run at its next decision.
    Without it the prompt, which grows every round, would dominate the cost
    and batching could not help.  Likewise the keys/values of each distinct
    system turn (a domain's rules, shared by all its episodes) are kept for
    the policy's lifetime, so an episode's first decision runs only its
    first state.  Both are off for models whose cache is not plain full
    attention (sliding-window or linear-attention layers).
    """

    def __init__(self, model, tokenizer, sampling: SamplingSettings | None = None, seed: int = 0,
                 scoring_batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingSettings()
        self.scoring_batch_size = scoring_batch_size
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.stop_ids = self._stop_ids()
        self.reuses_prefixes = all(type(layer) is DynamicLayer
                                   for layer in DynamicCache(config=model.config).layers)
        self._prefixes: dict[Hashable, _CachedPrefix] = {}
        self._system_turns: dict[str, _CachedPrefix | None] = {}  # rendered system turn -> its keys/values
        self._newline_ids: frozenset[int] | None = None
        self.fast: FastGenerator | None = None

    def use_fast_decoder(self, slots: int, capacity: int, compile: bool | None = None) -> bool:
        """Generate with ``sepo.policies.fast_decode`` from now on; False (and nothing changes) if unsupported.

        ``slots`` episodes keep their keys/values resident, each up to
        ``capacity`` tokens; ``compile`` (default: on CUDA) captures the
        decode step in a CUDA graph.
        """
        from sepo.policies.fast_decode import FastGenerator, supports

        if not supports(self.model):
            return False
        seed = int(torch.randint(2**62, (), generator=self.generator, device=self.device))  # its own stream
        self.fast = FastGenerator(
            self.model, self.sampling, slots=slots, capacity=capacity, stop_ids=self.stop_ids,
            newline_ids=self.newline_ids(), is_complete=lambda ids: reply_is_complete(self.tokenizer.decode(ids)),
            seed=seed, compile=compile, pad_id=self.tokenizer.pad_token_id)
        return True

    # -- the AgentPolicy interface ------------------------------------------------
    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        """One sampled reply per request; invalid ones get the constrained fallback."""
        prompts = [self.render(r.messages) for r in requests]
        keys = [r.cache_key for r in requests]
        heads = [self._system_turn(r.messages) for r in requests]
        replies: list[AgentReply] = []
        for request, (ids, logprobs) in zip(requests, self.generate(prompts, keys, heads), strict=True):
            text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip()
            action = parse_action(text, request.view.legal_actions)
            replies.append(AgentReply(text=text, action=action or "", valid=action is not None,
                                      extras={"token_ids": ids, "logprobs": logprobs}))
        invalid = [i for i, reply in enumerate(replies) if not reply.valid]
        if invalid:
            contexts = [prompts[i] + (replies[i].text + "\n" if replies[i].text else "") for i in invalid]
            scores = self.action_log_scores(contexts, [requests[i].view.legal_actions for i in invalid],
                                            [keys[i] for i in invalid])
            for i, action_scores in zip(invalid, scores, strict=True):
                replies[i].action = max(action_scores, key=action_scores.__getitem__)
        return replies

    def forget(self, cache_keys: Sequence[Hashable]) -> None:
        """Drop the cached prefixes (and fast-decoder slots) of episodes that ended."""
        for key in cache_keys:
            self._prefixes.pop(key, None)
        if self.fast is not None:
            self.fast.forget(cache_keys)

    def action_probabilities(self, requests: Sequence[DecisionRequest]) -> list[dict[str, float]]:
        """P(action) after ``Action: `` directly following the prompt, normalised over the legal actions."""
        contexts = [self.render(r.messages) for r in requests]
        out = []
        for scores in self.action_log_scores(contexts, [r.view.legal_actions for r in requests]):
            top = max(scores.values())
            weights = {a: math.exp(s - top) for a, s in scores.items()}
            total = sum(weights.values())
            out.append({a: w / total for a, w in weights.items()})
        return out

    # -- building blocks ------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> str:
        """The chat as the model sees it, ending with the assistant turn's opening."""
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], cache_keys: Sequence[Hashable | None] | None = None,
                 heads: Sequence[str | None] | None = None) -> list[tuple[list[int], list[float]]]:
        """(generated ids, their log-probs) per prompt, each row stopping on its own.

        ``heads``: per prompt, a leading text many prompts share (the system
        turn) whose keys/values are computed once and kept; None: no sharing.
        """
        if not prompts:
            return []
        keys = list(cache_keys) if cache_keys is not None else [None] * len(prompts)
        prompt_ids = self._encode_batch(prompts)
        if self.fast is not None:
            return self._generate_fast(prompt_ids, keys, heads)
        return self._generate_here(prompt_ids, keys, heads)

    def _generate_fast(self, prompt_ids: list[list[int]], keys: list[Hashable | None],
                       heads: Sequence[str | None] | None) -> list[tuple[list[int], list[float]]]:
        """The fast decoder in chunks of its slot count; decisions too long for a slot run here."""
        assert self.fast is not None
        out: list[tuple[list[int], list[float]] | None] = [None] * len(prompt_ids)
        room = self.fast.decoder.cache.capacity - self.sampling.max_new_tokens + 1
        fits = [i for i, ids in enumerate(prompt_ids) if len(ids) <= room]
        for begin in range(0, len(fits), self.fast.slots):
            chunk = fits[begin:begin + self.fast.slots]
            for i, result in zip(chunk, self.fast.generate([prompt_ids[i] for i in chunk], [keys[i] for i in chunk]),
                                 strict=True):
                out[i] = result
        rest = [i for i in range(len(prompt_ids)) if out[i] is None]
        if rest:
            for i, result in zip(rest, self._generate_here([prompt_ids[i] for i in rest], [keys[i] for i in rest],
                                                           [heads[i] for i in rest] if heads else None), strict=True):
                out[i] = result
        return out  # type: ignore[return-value]

    def _generate_here(self, prompt_ids: list[list[int]], keys: list[Hashable | None],
                       heads: Sequence[str | None] | None) -> list[tuple[list[int], list[float]]]:
        """This module's decode loop (see the module doc)."""
        prefixes = self._prefixes_for(keys, heads or [None] * len(prompt_ids))
        cache, attention, logits = self._prefill_for_decoding(prompt_ids, prefixes)
        next_position = attention.sum(-1)
        rows = list(range(len(prompt_ids)))  # original index of each row of the batch
        alive = rows  # batch rows still generating
        ids: list[list[int]] = [[] for _ in prompt_ids]
        logprobs: list[list[float]] = [[] for _ in prompt_ids]
        newline_ids = self.newline_ids()
        pad = self.tokenizer.pad_token_id
        for step in range(self.sampling.max_new_tokens):
            alive_index = torch.tensor(alive, device=self.device)
            sampled, token_logprobs = self._sample(logits if len(alive) == len(rows) else logits[alive_index])
            still = []
            for j, token, logprob in zip(alive, sampled.tolist(), token_logprobs.tolist(), strict=True):
                row = rows[j]
                ids[row].append(token)
                logprobs[row].append(logprob)
                done = (step + 1 == self.sampling.max_new_tokens or token in self.stop_ids
                        or (token in newline_ids and reply_is_complete(self.tokenizer.decode(ids[row]))))
                if done:  # its cache holds the prompt and every generated token but the last
                    self._remember(keys[row], prompt_ids[row] + ids[row][:-1], cache, j, attention[j])
                else:
                    still.append(j)
            if not still:
                break
            tokens = torch.full((len(rows),), pad, dtype=torch.long, device=self.device)
            tokens[alive_index] = sampled
            alive = still
            if 4 * len(alive) <= 3 * len(rows):  # finished rows are a quarter of the batch: drop them
                index = torch.tensor(alive, device=self.device)
                _select_rows(cache, index)
                attention, tokens, next_position = attention[index], tokens[index], next_position[index]
                rows, alive = [rows[j] for j in alive], list(range(len(alive)))
            attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
            logits = self.model(input_ids=tokens[:, None], attention_mask=attention,
                                position_ids=next_position[:, None], cache=cache,
                                use_cache=True).logits[:, -1, :].float()
            next_position = next_position + 1
        return list(zip(ids, logprobs, strict=True))

    @torch.inference_mode()
    def action_log_scores(self, contexts: Sequence[str], legal_actions: Sequence[Sequence[str]],
                          cache_keys: Sequence[Hashable | None] | None = None) -> list[dict[str, float]]:
        """log P(`` X`` | context + ``Action:``) for every legal X of every context (see module doc).

        Each context is run once; its cache is then repeated for every legal
        action (at most ``scoring_batch_size`` rows at a time: negotiation_items
        has up to 125 legal actions), so scoring costs one long pass per
        context, not per action.
        """
        keys = list(cache_keys) if cache_keys is not None else [None] * len(contexts)
        prefixes = self._prefixes_for(keys, [None] * len(contexts))
        stem = ACTION_PREFIX.rstrip()
        fulls: list[list[list[int]]] = []  # per context, per action: the whole token sequence
        starts: list[list[int]] = []  # per context, per action: index of the first scored token
        for context, legal in zip(contexts, legal_actions, strict=True):
            prefix = self._encode(context + stem)
            fulls.append([self._encode(context + ACTION_PREFIX + a) for a in legal])
            starts.append([max(1, shared_length(prefix, full)) for full in fulls[-1]])
        # the part every action of a context shares and that holds no scored token
        stems = [min(min(first), shared_length(*seqs)) for first, seqs in zip(starts, fulls, strict=True)]
        scores: list[dict[str, float]] = [{} for _ in contexts]
        size = self.scoring_batch_size
        for begin in range(0, len(contexts), size):
            batch = range(begin, min(begin + size, len(contexts)))
            cache, attention, last_logits = self._prefill([fulls[c][0][:stems[c]] for c in batch],
                                                          [prefixes[c] for c in batch])
            pairs = [(j, c, a) for j, c in enumerate(batch) for a in range(len(fulls[c]))]
            for chunk in (pairs[k:k + size] for k in range(0, len(pairs), size)):  # bounded cache copies
                suffixes = [fulls[c][a][stems[c]:] for _, c, a in chunk]
                width = max(len(s) for s in suffixes)
                suffix_ids = torch.full((len(chunk), width), self.tokenizer.pad_token_id, dtype=torch.long)
                suffix_mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, suffix in enumerate(suffixes):  # right padding: pads only follow real tokens
                    suffix_ids[row, :len(suffix)] = torch.tensor(suffix)
                    suffix_mask[row, :len(suffix)] = 1
                rows = torch.tensor([j for j, _, _ in chunk], device=self.device)
                rows_cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers],
                                          config=self.model.config)
                rows_attention = torch.cat([attention[rows], suffix_mask.to(self.device)], dim=1)
                logits = self.model(input_ids=suffix_ids.to(self.device), attention_mask=rows_attention,
                                    position_ids=rows_attention.cumsum(-1)[:, -width:] - 1, cache=rows_cache,
                                    use_cache=True).logits.float()
                # logits predicting suffix token t: the prefill's last for t = 0, else the suffix's t - 1
                logits = torch.cat([last_logits[rows][:, None], logits[:, :-1]], dim=1)
                token_logprobs = torch.log_softmax(logits, dim=-1).gather(
                    -1, suffix_ids.to(self.device)[..., None])[..., 0]
                for row, (_, c, a) in enumerate(chunk):
                    first = starts[c][a] - stems[c]
                    scores[c][legal_actions[c][a]] = token_logprobs[row, first:len(suffixes[row])].sum().item()
        return [{a: s[a] for a in legal} for s, legal in zip(scores, legal_actions, strict=True)]

    def newline_ids(self) -> frozenset[int]:
        """Ids whose text contains a newline: only after one of them can a reply be complete."""
        if self._newline_ids is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._newline_ids = frozenset(i for i, piece in enumerate(pieces) if "\n" in piece)
        return self._newline_ids

    # -- internals ----------------------------------------------------------------------
    def _prefixes_for(self, keys: Sequence[Hashable | None],
                      heads: Sequence[str | None]) -> list[_CachedPrefix | None]:
        """Per row, the cached keys/values its prompt may start with: its episode's, else its system turn's."""
        if not self.reuses_prefixes:
            return [None] * len(keys)
        own = [self._prefixes.get(key) if key is not None else None for key in keys]
        missing = sorted({head for head, prefix in zip(heads, own, strict=True)
                          if prefix is None and head is not None and head not in self._system_turns})
        if missing:
            head_ids = self._encode_batch(missing)
            cache, attention, _ = self._prefill(head_ids, [None] * len(missing))
            for row, (head, sequence) in enumerate(zip(missing, head_ids, strict=True)):
                self._system_turns[head] = self._snapshot(sequence, cache, row, attention[row])
        return [prefix or (self._system_turns.get(head) if head is not None else None)
                for prefix, head in zip(own, heads, strict=True)]

    def _prefill_for_decoding(self, sequences: Sequence[Sequence[int]], prefixes: Sequence[_CachedPrefix | None]
                              ) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """``_prefill`` by groups of similar uncached length, joined into one preallocated decode cache.

        Each row's keys/values end at the same column, followed by room for
        ``max_new_tokens``; models without plain full attention take one
        ``_prefill`` and its growing cache.
        """
        if not self.reuses_prefixes:
            return self._prefill(sequences, prefixes)
        uncached = [len(seq) - self._reusable(prefix, seq) for seq, prefix in zip(sequences, prefixes, strict=True)]
        parts = []
        for group in _length_groups(uncached):
            parts.append((torch.tensor(group, device=self.device),
                          *self._prefill([sequences[i] for i in group], [prefixes[i] for i in group])))
        width = max(attention.shape[1] for _, _, attention, _ in parts)
        attention = torch.zeros((len(sequences), width), dtype=torch.long, device=self.device)
        logits = parts[0][3].new_empty((len(sequences), parts[0][3].shape[-1]))
        layers = []
        for layer in parts[0][1].layers:
            shape = (len(sequences), layer.keys.shape[1], width + self.sampling.max_new_tokens, layer.keys.shape[-1])
            joined = _GrowingLayer(layer.keys.new_empty(shape), layer.values.new_empty(shape), width)
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

    def _prefill(self, sequences: Sequence[Sequence[int]], prefixes: Sequence[_CachedPrefix | None]
                 ) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """Run ``sequences`` left-padded: (their cache, attention mask, logits after the last token).

        A row whose leading tokens are cached in its prefix takes their
        keys/values from there and runs only the rest; the batch runs as
        many new tokens as its longest uncached part (rows with less take
        that many from their cached tail instead), so the cached block and
        the new tokens meet at one column for every row: each row's tokens
        are the last columns of its mask, one run without gaps.
        """
        cached = [self._reusable(prefix, seq) for prefix, seq in zip(prefixes, sequences, strict=True)]
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

    @staticmethod
    def _reusable(prefix: _CachedPrefix | None, sequence: Sequence[int]) -> int:
        """How many leading tokens of ``sequence`` have keys/values in ``prefix`` (at least one is left to run)."""
        if prefix is None:
            return 0
        return min(shared_length(prefix.ids, sequence), len(sequence) - 1)

    def _remember(self, key: Hashable | None, ids: list[int], cache: Cache, row: int,
                  attention: torch.Tensor) -> None:
        """Keep row ``row``'s keys/values for the episode's next decision."""
        if key is None or not self.reuses_prefixes:
            return
        prefix = self._snapshot(ids, cache, row, attention)
        if prefix is not None:
            self._prefixes[key] = prefix

    @staticmethod
    def _snapshot(ids: Sequence[int], cache: Cache, row: int, attention: torch.Tensor) -> _CachedPrefix | None:
        """Row ``row``'s keys/values without its padding, if they are exactly those of ``ids``.

        A row's tokens fill the last columns of its mask (see ``_prefill``),
        so they are one slice, copied so as not to hold the batch's cache.
        """
        end = len(attention)
        start = end - len(ids)
        if start < 0 or int(attention[start:].sum()) != len(ids):
            return None
        layers = [(layer.keys[row, :, start:end].clone(), layer.values[row, :, start:end].clone())
                  for layer in cache.layers]
        return _CachedPrefix(list(ids), layers)

    def _system_turn(self, messages: Sequence[Message]) -> str | None:
        """The chat's rendered system turn, the head its episode shares with every episode of its domain."""
        if not self.reuses_prefixes or not messages or messages[0]["role"] != "system":
            return None
        return self.tokenizer.apply_chat_template([messages[0]], tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def _sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token, its log-prob) per row; top-p runs on the top-k candidates only (the rest have mass 0)."""
        if self.sampling.greedy:
            tokens = logits.argmax(dim=-1)
            return tokens, torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
        scaled = logits / self.sampling.temperature
        logprobs = torch.log_softmax(scaled, dim=-1)
        k = self.sampling.top_k if 0 < self.sampling.top_k < scaled.shape[-1] else scaled.shape[-1]
        candidates, order = torch.topk(scaled, k, dim=-1)  # sorted, best first
        if self.sampling.top_p < 1.0:
            probs = torch.softmax(candidates, dim=-1)
            before = probs.cumsum(dim=-1) - probs  # mass of the strictly better tokens
            candidates = candidates.masked_fill(before >= self.sampling.top_p, -math.inf)
        picked = torch.multinomial(torch.softmax(candidates, dim=-1), 1, generator=self.generator)
        tokens = order.gather(-1, picked)[:, 0]
        return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]

    def _stop_ids(self) -> set[int]:
        """End-of-sequence ids and every special added token: a reply holds no turn markers."""
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        ids.update(i for i, token in self.tokenizer.added_tokens_decoder.items() if token.special)
        return {i for i in ids if i is not None}


def load_model_policy(path: str | Path, params: Params, greedy: bool | None = None) -> ModelPolicy:
    """The model at ``path`` (directory or Hub id) as a policy sampling with ``params.generation``.

    Runs on the GPU when there is one (in the checkpoint's dtype), else on
    the CPU in float32.  ``greedy`` overrides the params' choice.
    """
    from sepo.models.loading import load_model_and_tokenizer

    device = "cuda" if torch.cuda.is_available() else None
    model, tokenizer = load_model_and_tokenizer(path, trust_remote_code=params.model.trust_remote_code,
                                                device=device, dtype="auto" if device else None)
    g = params.generation
    sampling = SamplingSettings(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                                max_new_tokens=g.max_new_tokens, greedy=g.greedy if greedy is None else greedy)
    policy = ModelPolicy(model, tokenizer, sampling, seed=g.seed)
    if g.fast_decode == "on" or (g.fast_decode == "auto" and device == "cuda"):
        policy.use_fast_decoder(g.fast_decode_slots, g.fast_decode_capacity)
    return policy
