"""The standard decode loop: a batch of prompts sampled through transformers' caches, each row stopping alone.

Why a hand-written loop rather than ``generate``: a batch of ``generate``
runs until its longest sample stops, so one runaway reply makes every row
pay for every step.  Here each row stops as soon as its reply is complete
(``sepo.policies.decoding.StopRule``): it is no longer sampled, and finished
rows are dropped from the batch and from the cache once they are a quarter
of it (one copy of the cache per few rows, not per row).  Rows are dropped
through the cache's public ``reorder_cache``, so the loop is the same for
full-attention, sliding-window, linear-attention and shared-KV layers; a
cache that cannot drop rows keeps them (their tokens are padding, never
read).  It runs on any device and any architecture; on a GPU, plain
decoders can take ``sepo.policies.fast_decode`` instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from sepo.policies.decoding import Sampler, StopRule
from sepo.policies.prefix_cache import PrefixCache, can_select_rows, select_rows


@torch.inference_mode()
def decode(prefixes: PrefixCache, sampler: Sampler, stop: StopRule, prompt_ids: Sequence[list[int]],
           keys: Sequence[Hashable | None], heads: Sequence[str | None] | None = None
           ) -> list[tuple[list[int], list[float]]]:
    """(generated ids, their log-probs) per prompt; a finished row's keys/values are kept under its key."""
    model, device = prefixes.model, prefixes.device
    limit = sampler.settings.max_new_tokens
    kept = prefixes.prefixes_for(keys, heads or [None] * len(prompt_ids))
    cache, attention, logits = prefixes.prefill_for_decoding(prompt_ids, kept)
    droppable = can_select_rows(cache)
    next_position = attention.sum(-1)
    rows = list(range(len(prompt_ids)))  # original index of each row of the batch
    alive = rows  # batch rows still generating
    ids: list[list[int]] = [[] for _ in prompt_ids]
    logprobs: list[list[float]] = [[] for _ in prompt_ids]
    pad = prefixes.tokenizer.pad_token_id
    for step in range(limit):
        alive_index = torch.tensor(alive, device=device)
        sampled, token_logprobs = sampler(logits if len(alive) == len(rows) else logits[alive_index])
        still = []
        for j, token, logprob in zip(alive, sampled.tolist(), token_logprobs.tolist(), strict=True):
            row = rows[j]
            ids[row].append(token)
            logprobs[row].append(logprob)
            if step + 1 == limit or stop.ends_with_stop(ids[row]):
                # its cache holds the prompt and every generated token but the last
                prefixes.remember(keys[row], prompt_ids[row] + ids[row][:-1], cache, j, attention[j])
            else:
                still.append(j)
        if not still:
            break
        tokens = torch.full((len(rows),), pad, dtype=torch.long, device=device)
        tokens[alive_index] = sampled
        alive = still
        if droppable and 4 * len(alive) <= 3 * len(rows):  # finished rows are a quarter of the batch: drop them
            index = torch.tensor(alive, device=device)
            select_rows(cache, index)
            attention, tokens, next_position = attention[index], tokens[index], next_position[index]
            rows, alive = [rows[j] for j in alive], list(range(len(alive)))
        attention = torch.cat([attention, attention.new_ones(len(rows), 1)], dim=1)
        logits = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_position[:, None],
                       cache=cache, use_cache=True).logits[:, -1, :].float()
        next_position = next_position + 1
    return list(zip(ids, logprobs, strict=True))
