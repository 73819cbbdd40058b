"""The decode core both decode loops share: sampling settings, the sampling function and the stop rule.

``sepo.policies.decode_loop`` (transformers' caches, any architecture) and
``sepo.policies.fast_decode`` (resident GPU slots, plain decoders) must
produce replies from the same distribution and cut them at the same token,
or a run's results would depend on which loop a machine took.  So the exact
choices live here once:

- Sampling (``sample_tokens``): logits / temperature, then top-k, then top-p
  (nucleus, the smallest set of the best tokens whose probability reaches
  top_p), then a Gumbel-max draw from uniforms the caller supplies (one per
  candidate, from its own seeded generator: the draw is then a pure
  function of the logits and the noise, which is what a captured CUDA graph
  needs).  ``greedy`` takes the arg-max.  Log-probs are those of the
  temperature-scaled distribution before top-k/top-p (TRL's convention;
  temperature 1 when greedy).
- Stop rule (``StopRule``): a reply stops at an end-of-sequence id of the
  tokenizer or the generation config or any special added token (a reply
  never holds a turn marker: a model that writes ``<|im_start|>`` has run
  into the next turn), at ``max_new_tokens``, or when a line of the reply
  that ends in a newline is an ``Action:`` line with a value.  Inside an
  unclosed ``<think>`` block no ``Action:`` line stops the reply (the parser
  only reads text after ``</think>``).

It imports only torch and the answer parser's pattern, so the fast decoder
stays importable without the training stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from sepo.games.parsing import action_line_value

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


def noise_width(vocab_size: int, top_k: int) -> int:
    """Uniforms a row needs per draw: one per candidate token."""
    return top_k if 0 < top_k < vocab_size else vocab_size


def sample_tokens(logits: torch.Tensor, uniform: torch.Tensor | None, temperature: float, top_p: float,
                  top_k: int, greedy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(token, its log-prob) per row of ``logits`` (B, V), float32 (see the module doc).

    ``uniform`` is (B, ``noise_width``) uniforms in [0, 1); None when greedy.
    """
    if greedy:
        tokens = logits.argmax(dim=-1)
        return tokens, logits.gather(-1, tokens[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
    scaled = logits / temperature
    if 0 < top_k < scaled.shape[-1]:
        values, indices = torch.topk(scaled, top_k, dim=-1)  # sorted, best first
    else:
        values, indices = torch.sort(scaled, dim=-1, descending=True)
    if top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the strictly better tokens
        values = values.masked_fill(before >= top_p, -torch.inf)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
    choice = (values + gumbel).argmax(dim=-1, keepdim=True)
    tokens = indices.gather(-1, choice)[:, 0]
    return tokens, scaled.gather(-1, tokens[:, None])[:, 0] - torch.logsumexp(scaled, dim=-1)


class Sampler:
    """``sample_tokens`` with ``settings`` and uniforms from one generator seeded at construction."""

    def __init__(self, settings: SamplingSettings, seed: int, device: torch.device | str = "cpu") -> None:
        self.settings = settings
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def uniform(self, rows: int, vocab_size: int) -> torch.Tensor | None:
        """The noise of one draw for ``rows`` rows (None when greedy: no draw, the stream does not move)."""
        if self.settings.greedy:
            return None
        width = noise_width(vocab_size, self.settings.top_k)
        return torch.rand((rows, width), generator=self.generator, device=self.generator.device)

    def __call__(self, logits: torch.Tensor, uniform: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.settings
        if uniform is None and not s.greedy:
            uniform = self.uniform(len(logits), logits.shape[-1])
        return sample_tokens(logits, uniform, s.temperature, s.top_p, s.top_k, s.greedy)


def reply_is_complete(text: str) -> bool:
    """True once a finished line of ``text`` is an ``Action:`` line with a value (outside ``<think>``)."""
    if _THINK_OPEN in text and _THINK_CLOSE not in text:
        return False
    answer = text.rsplit(_THINK_CLOSE, 1)[-1]
    finished_lines = answer.split("\n")[:-1]
    for line in finished_lines:
        value = action_line_value(line)
        if value is not None and value.strip():
            return True
    return False


@dataclass(frozen=True)
class StopRule:
    """When a reply (its generated ids) is finished; see the module doc.

    ``is_complete`` (the decoded ``Action:`` line check) is asked only after
    a token in ``newline_ids``: only then can a new line have finished.
    """

    stop_ids: frozenset[int] = frozenset()
    newline_ids: frozenset[int] = frozenset()
    is_complete: Callable[[list[int]], bool] | None = field(default=None, compare=False)

    def ends_with_stop(self, ids: list[int]) -> bool:
        """True if the last token of ``ids`` ends the reply (``max_new_tokens`` is the loops' own check)."""
        token = ids[-1]
        return token in self.stop_ids or (self.is_complete is not None and token in self.newline_ids
                                          and self.is_complete(ids))

    def stop_step(self, ids: list[int], first: int = 0) -> int | None:
        """The step at which the reply ``ids`` stops, looking from step ``first`` on; None if it goes on."""
        for t in range(first, len(ids)):
            if ids[t] in self.stop_ids or (ids[t] in self.newline_ids and self.ends_with_stop(ids[:t + 1])):
                return t
        return None


def stop_ids_of(model, tokenizer) -> frozenset[int]:
    """End-of-sequence ids and every special added token: a reply holds no turn markers."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    ids.update(i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    return frozenset(i for i in ids if i is not None)


def newline_ids_of(tokenizer) -> frozenset[int]:
    """Ids whose text contains a newline: only after one of them can a reply be complete."""
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, piece in enumerate(pieces) if "\n" in piece)


def text_stop_rule(tokenizer, stop_ids: Sequence[int] | frozenset[int]) -> StopRule:
    """The stop rule of replies decoded with ``tokenizer`` (newline ids computed once, here)."""
    return StopRule(frozenset(stop_ids), newline_ids_of(tokenizer),
                    lambda ids: reply_is_complete(tokenizer.decode(ids)))
