"""A language-model policy behind the batched ``AgentPolicy`` interface.

``ModelPolicy.decide`` renders each request's chat with the tokenizer's chat
template (``add_generation_prompt``), samples every reply of the batch in one
hand-written decode loop with a KV cache, parses it with the domain parser
and applies SPEC section 2's constrained fallback when nothing legal is found.

Why a hand-written loop rather than ``generate``: a batch of ``generate``
runs until its longest sample stops, so one runaway reply makes every row pay
for every step.  Here each row stops as soon as its reply is complete (an
end-of-turn token, or a finished ``Action: X`` line) and finished rows are
dropped from the batch and from the cache.  Per-decision token caps stay
tight (``max_new_tokens``).  Across the decisions of an episode the keys and
values of its chat are kept and reused (see ``ModelPolicy``), and the decode
cache is preallocated, so a step costs one pass over each row's new tokens.

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

import torch
from transformers import Cache, DynamicCache, StaticCache
from transformers.cache_utils import DynamicLayer

from sepo.config import Params
from sepo.games.parsing import _ACTION_LINE, ACTION_PREFIX, parse_action
from sepo.rollout import AgentReply, DecisionRequest, Message

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


def _shared_length(*sequences: Sequence[int]) -> int:
    """Length of the common prefix of token sequences."""
    length = 0
    for tokens in zip(*sequences, strict=False):
        if any(t != tokens[0] for t in tokens):
            break
        length += 1
    return length


def _select_rows(cache: Cache, index: torch.Tensor) -> None:
    """Keep (or repeat) the cache's batch rows ``index``, for growing and preallocated layers alike."""
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[index], layer.values[index]


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
    and batching could not help.  It is off for models whose cache is not
    plain full attention (sliding-window or linear-attention layers).
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
        self._newline_ids: frozenset[int] | None = None

    # -- the AgentPolicy interface ------------------------------------------------
    def decide(self, requests: Sequence[DecisionRequest]) -> list[AgentReply]:
        """One sampled reply per request; invalid ones get the constrained fallback."""
        prompts = [self.render(r.messages) for r in requests]
        keys = [r.cache_key for r in requests]
        replies: list[AgentReply] = []
        for request, (ids, logprobs) in zip(requests, self.generate(prompts, keys), strict=True):
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
        """Drop the cached prefixes of episodes that ended."""
        for key in cache_keys:
            self._prefixes.pop(key, None)

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
    def generate(self, prompts: Sequence[str],
                 cache_keys: Sequence[Hashable | None] | None = None) -> list[tuple[list[int], list[float]]]:
        """(generated ids, their log-probs) per prompt, each row stopping on its own."""
        if not prompts:
            return []
        keys = list(cache_keys) if cache_keys is not None else [None] * len(prompts)
        prompt_ids = [self._encode(p) for p in prompts]
        cache, attention, logits = self._prefill(prompt_ids, keys, room=self.sampling.max_new_tokens)
        next_position = attention.sum(-1)
        rows = list(range(len(prompts)))  # original index of each row still in the batch
        ids: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        newline_ids = self.newline_ids()
        for step in range(self.sampling.max_new_tokens):
            tokens, token_logprobs = self._sample(logits.float())
            keep = []
            for j, (row, token, logprob) in enumerate(zip(rows, tokens.tolist(), token_logprobs.tolist(),
                                                         strict=True)):
                ids[row].append(token)
                logprobs[row].append(logprob)
                done = (step + 1 == self.sampling.max_new_tokens or token in self.stop_ids
                        or (token in newline_ids and reply_is_complete(self.tokenizer.decode(ids[row]))))
                if done:  # its cache holds the prompt and every generated token but the last
                    self._remember(keys[row], prompt_ids[row] + ids[row][:-1], cache, j, attention[j])
                else:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=self.device)
                _select_rows(cache, index)
                attention, tokens, next_position = attention[index], tokens[index], next_position[index]
                rows = [rows[j] for j in keep]
            attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
            logits = self.model(input_ids=tokens[:, None], attention_mask=attention,
                                position_ids=next_position[:, None], cache=cache,
                                use_cache=True).logits[:, -1, :]
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
        stem = ACTION_PREFIX.rstrip()
        fulls: list[list[list[int]]] = []  # per context, per action: the whole token sequence
        starts: list[list[int]] = []  # per context, per action: index of the first scored token
        for context, legal in zip(contexts, legal_actions, strict=True):
            prefix = self._encode(context + stem)
            fulls.append([self._encode(context + ACTION_PREFIX + a) for a in legal])
            starts.append([max(1, _shared_length(prefix, full)) for full in fulls[-1]])
        # the part every action of a context shares and that holds no scored token
        stems = [min(min(first), _shared_length(*seqs)) for first, seqs in zip(starts, fulls, strict=True)]
        scores: list[dict[str, float]] = [{} for _ in contexts]
        size = self.scoring_batch_size
        for begin in range(0, len(contexts), size):
            batch = range(begin, min(begin + size, len(contexts)))
            cache, attention, last_logits = self._prefill([fulls[c][0][:stems[c]] for c in batch],
                                                          [keys[c] for c in batch])
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
    def _prefill(self, sequences: Sequence[Sequence[int]], keys: Sequence[Hashable | None],
                 room: int | None = None) -> tuple[Cache, torch.Tensor, torch.Tensor]:
        """Run ``sequences`` left-padded: (their cache, attention mask, logits after the last token).

        A row whose leading tokens are cached under its key takes their
        keys/values from the cache and runs only the rest; the batch runs as
        many new tokens as its longest uncached part (rows with less take
        that many from their cached tail instead), so the cached block and
        the new tokens meet at one column for every row.

        With ``room`` (tokens still to come) and a plain full-attention model
        the cache is preallocated: a growing cache copies all of itself at
        every decode step, which at a few hundred rows of a thousand tokens
        costs more than the model.
        """
        cached = [self._reusable(key, seq) for key, seq in zip(keys, sequences, strict=True)]
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
        sources = [(row, self._prefixes[key].layers, n)
                   for row, (key, n) in enumerate(zip(keys, from_cache, strict=True)) if n]
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
        if room is not None and self.reuses_prefixes:
            cache = StaticCache(config=self.model.config, max_cache_len=cached_width + width + room)
            for layer, (past_keys, past_values) in zip(cache.layers, past, strict=False):
                layer.update(past_keys, past_values)
        else:
            cache = DynamicCache(past or None, config=self.model.config)
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention,
                            position_ids=positions, cache=cache, use_cache=True,
                            logits_to_keep=1).logits[:, -1, :].float()
        return cache, attention, logits

    def _reusable(self, key: Hashable | None, sequence: Sequence[int]) -> int:
        """How many leading tokens of ``sequence`` have cached keys/values (at least one is left to run)."""
        prefix = self._prefixes.get(key) if key is not None else None
        if prefix is None:
            return 0
        return min(_shared_length(prefix.ids, sequence), len(sequence) - 1)

    def _remember(self, key: Hashable | None, ids: list[int], cache: Cache, row: int,
                  attention: torch.Tensor) -> None:
        if key is None or not self.reuses_prefixes:
            return
        valid = attention.bool()
        width = len(valid)
        layers = [(layer.keys[row][:, :width][:, valid], layer.values[row][:, :width][:, valid])
                  for layer in cache.layers]
        if layers and layers[0][0].shape[1] == len(ids):
            self._prefixes[key] = _CachedPrefix(ids, layers)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sampling.greedy:
            tokens = logits.argmax(dim=-1)
            return tokens, torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
        scaled = logits / self.sampling.temperature
        logprobs = torch.log_softmax(scaled, dim=-1)
        filtered = scaled.clone()
        if 0 < self.sampling.top_k < filtered.shape[-1]:
            kth = torch.topk(filtered, self.sampling.top_k, dim=-1).values[:, -1:]
            filtered[filtered < kth] = -math.inf
        if self.sampling.top_p < 1.0:
            ordered, order = torch.sort(filtered, dim=-1, descending=True)
            probs = torch.softmax(ordered, dim=-1)
            before = probs.cumsum(dim=-1) - probs  # mass of the strictly better tokens
            ordered[before >= self.sampling.top_p] = -math.inf
            filtered = torch.full_like(filtered, -math.inf).scatter(-1, order, ordered)
        tokens = torch.multinomial(torch.softmax(filtered, dim=-1), 1, generator=self.generator)[:, 0]
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
    return ModelPolicy(model, tokenizer, sampling, seed=g.seed)
