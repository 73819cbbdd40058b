"""A language-model policy behind the batched ``AgentPolicy`` interface.

``ModelPolicy.decide`` renders each request's chat with the tokenizer's chat
template (``add_generation_prompt``), samples every reply of the batch in one
call, parses it with the domain parser and applies SPEC section 2's
constrained fallback when nothing legal is found.  The work is split by job,
one module each:

- ``sepo.policies.decoding``: the sampling settings, the sampling function
  and the stop rule (shared with the fast decoder, so both loops sample the
  same distribution and cut replies at the same token);
- ``sepo.policies.prefix_cache``: keys/values kept across an episode's
  decisions and per system turn, and the prefill (plain full-attention
  caches only; any other cache runs each prompt whole);
- ``sepo.policies.decode_loop``: the batched loop where each row stops on
  its own, for any transformers cache;
- ``sepo.policies.scoring``: log-scores of the legal actions (the
  constrained fallback, Kuhn's played policy);
- ``sepo.policies.fast_decode``: resident GPU slots for plain decoders.

Exact choices, written down because results depend on them (sampling and
stop rule: ``sepo.policies.decoding``):

- Reply text: the generated tokens decoded without special tokens, trailing
  whitespace stripped.  ``extras`` holds ``token_ids`` (every generated id,
  the stop token included) and ``logprobs`` (their log-probabilities under
  the temperature-scaled distribution before top-k/top-p, TRL's convention;
  temperature 1 when greedy).
- Constrained fallback (invalid replies): the context is the prompt, the
  reply text and a newline (no newline after an empty reply); each legal
  action is scored as in ``sepo.policies.scoring``.  The highest score
  wins; ties go to the first legal action.
- GPU decoding: ``use_fast_decoder`` switches ``generate`` to the
  resident-slot loop of ``sepo.policies.fast_decode`` (same stop rule,
  same sampling function; its own seeded stream, so sampled replies differ
  from this loop's while greedy ones are equal).  Decisions whose prompt
  plus ``max_new_tokens`` exceed a slot take the standard loop.  Scoring
  always runs through transformers' caches.
- The probabilities of the actions a model *plays* are scored after its own
  reply (``sepo.policies.action_scores``), never after the bare prompt: the
  action is written after the reasoning.  The actions of every domain are
  such that none is a token prefix of another, so no end-of-line term is
  needed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sepo.config import Params
from sepo.games.parsing import parse_action
from sepo.policies import scoring
from sepo.policies.decode_loop import decode
from sepo.policies.decoding import Sampler, SamplingSettings, StopRule, reply_is_complete, stop_ids_of, text_stop_rule
from sepo.policies.prefix_cache import CachedPrefix, PrefixCache
from sepo.policies.prefix_cache import length_groups as _length_groups
from sepo.rollout import AgentReply, DecisionRequest, Message

if TYPE_CHECKING:
    from sepo.policies.fast_decode import FastGenerator

__all__ = ["ModelPolicy", "SamplingSettings", "_length_groups", "load_model_policy", "reply_is_complete"]



class ModelPolicy:
    """An agent that is a causal LM and its tokenizer (any Hugging Face checkpoint, any transformers cache).

    Per-episode and per-system-turn prefix reuse (``sepo.policies.prefix_cache``)
    is on for plain full-attention decoders and off for models whose cache
    is not plain full attention (sliding-window, linear-attention or
    shared-KV layers): those run every prompt whole, which gives the same
    replies at a higher cost.
    """

    def __init__(self, model, tokenizer, sampling: SamplingSettings | None = None, seed: int = 0,
                 scoring_batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingSettings()
        self.scoring_batch_size = scoring_batch_size
        self.device = next(model.parameters()).device
        self.sampler = Sampler(self.sampling, seed, self.device)
        self.generator = self.sampler.generator
        self.stop_ids = stop_ids_of(model, tokenizer)
        self.prefix_cache = PrefixCache(model, tokenizer, room=self.sampling.max_new_tokens)
        self._stop: StopRule | None = None
        self.fast: FastGenerator | None = None

    @property
    def reuses_prefixes(self) -> bool:
        """Whether kept keys/values are reused (settable: off gives the same replies, at full cost)."""
        return self.prefix_cache.reuses_prefixes

    @reuses_prefixes.setter
    def reuses_prefixes(self, value: bool) -> None:
        self.prefix_cache.reuses_prefixes = value

    @property
    def _prefixes(self) -> dict[Hashable, CachedPrefix]:
        """The kept keys/values of the episodes still running."""
        return self.prefix_cache.episodes

    @property
    def stop(self) -> StopRule:
        """The stop rule (built on first use: finding the newline ids decodes the whole vocabulary)."""
        if self._stop is None:
            self._stop = text_stop_rule(self.tokenizer, self.stop_ids)
        return self._stop

    def newline_ids(self) -> frozenset[int]:
        """Ids whose text contains a newline: only after one of them can a reply be complete."""
        return self.stop.newline_ids

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
        self.fast = FastGenerator(self.model, self.sampling, slots=slots, capacity=capacity, stop=self.stop,
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
        self.prefix_cache.forget(cache_keys)
        if self.fast is not None:
            self.fast.forget(cache_keys)

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
        """The standard decode loop (``sepo.policies.decode_loop``)."""
        return decode(self.prefix_cache, self.sampler, self.stop, prompt_ids, keys, heads)

    def action_log_scores(self, contexts: Sequence[str], legal_actions: Sequence[Sequence[str]],
                          cache_keys: Sequence[Hashable | None] | None = None,
                          keep: bool = False) -> list[dict[str, float]]:
        """log P(`` X`` | context + ``Action:``) for every legal X of every context (``sepo.policies.scoring``).

        With ``cache_keys``, a context that extends its episode's kept
        keys/values runs only its new tokens; with ``keep`` too, each
        context's own keys/values are kept for the next one.
        """
        return scoring.action_log_scores(self.prefix_cache, contexts, legal_actions, cache_keys,
                                         self.scoring_batch_size, keep=keep)

    # -- internals ----------------------------------------------------------------------
    def _system_turn(self, messages: Sequence[Message]) -> str | None:
        """The chat's rendered system turn, the head its episode shares with every episode of its domain."""
        if not self.reuses_prefixes or not messages or messages[0]["role"] != "system":
            return None
        return self.tokenizer.apply_chat_template([messages[0]], tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]


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
