"""Scoring legal actions: the constrained fallback of SPEC section 2 and Kuhn's played-policy measure.

``action_log_scores`` gives log P(`` X`` | context + ``Action:``) for every
legal X.  The context is the prompt plus whatever the reply said; each
action is scored by the sum of the log-probabilities of the tokens of
``context + "Action: " + X`` that follow their common prefix with
``context + "Action:"`` (the text is tokenized as a whole, so the space
joins the action's first token exactly as in training).

Why it is built this way: each context is run once (through the episode's
kept keys/values when the model allows it, ``sepo.policies.prefix_cache``)
and its cache is then repeated for every legal action, at most
``batch_size`` rows at a time (negotiation_items has up to 125 legal
actions), so scoring costs one long pass per context, not per action.  A
cache that cannot be repeated row-wise is never touched: the actions of
that chunk are then scored by running their whole sequences again (slower,
the same numbers).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from sepo.games.parsing import ACTION_PREFIX
from sepo.policies.prefix import shared_length
from sepo.policies.prefix_cache import PrefixCache, rows_of


def _padded(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their mask: pads only follow real tokens, so no real token sees one."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def action_log_scores(prefixes: PrefixCache, contexts: Sequence[str], legal_actions: Sequence[Sequence[str]],
                      cache_keys: Sequence[Hashable | None] | None = None,
                      batch_size: int = 64, keep: bool = False) -> list[dict[str, float]]:
    """log P(`` X`` | context + ``Action:``) for every legal X of every context (see the module doc).

    With ``keep``, each keyed context's keys/values (up to the part its
    actions share) are kept under its key, so a later context of the same
    episode that extends it runs only its new tokens.
    """
    model, tokenizer, device = prefixes.model, prefixes.tokenizer, prefixes.device
    pad = tokenizer.pad_token_id
    keys = list(cache_keys) if cache_keys is not None else [None] * len(contexts)
    kept = prefixes.prefixes_for(keys, [None] * len(contexts))
    stem_text = ACTION_PREFIX.rstrip()
    fulls: list[list[list[int]]] = []  # per context, per action: the whole token sequence
    starts: list[list[int]] = []  # per context, per action: index of the first scored token
    for context, legal in zip(contexts, legal_actions, strict=True):
        prefix, *actions = prefixes.encode_batch([context + stem_text] + [context + ACTION_PREFIX + a for a in legal])
        fulls.append(actions)
        starts.append([max(1, shared_length(prefix, full)) for full in actions])
    # the part every action of a context shares and that holds no scored token
    stems = [min(min(first), shared_length(*seqs)) for first, seqs in zip(starts, fulls, strict=True)]
    scores: list[dict[str, float]] = [{} for _ in contexts]
    for begin in range(0, len(contexts), batch_size):
        batch = range(begin, min(begin + batch_size, len(contexts)))
        cache, attention, last_logits = prefixes.prefill([fulls[c][0][:stems[c]] for c in batch],
                                                         [kept[c] for c in batch])
        if keep:
            for j, c in enumerate(batch):
                prefixes.remember(keys[c], fulls[c][0][:stems[c]], cache, j, attention[j])
        pairs = [(j, c, a) for j, c in enumerate(batch) for a in range(len(fulls[c]))]
        for chunk in (pairs[k:k + batch_size] for k in range(0, len(pairs), batch_size)):  # bounded cache copies
            rows = torch.tensor([j for j, _, _ in chunk], device=device)
            rows_cache = rows_of(cache, rows, model.config)
            if rows_cache is None:  # not sliceable: run each whole sequence again
                sequences = [fulls[c][a] for _, c, a in chunk]
                ids, mask = _padded(sequences, pad, device)
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
                token_logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
                for row, (_, c, a) in enumerate(chunk):  # logprob of token t sits at t - 1
                    picked = token_logprobs[row, starts[c][a] - 1:len(sequences[row]) - 1]
                    scores[c][legal_actions[c][a]] = picked.sum().item()
                continue
            suffixes = [fulls[c][a][stems[c]:] for _, c, a in chunk]
            suffix_ids, suffix_mask = _padded(suffixes, pad, device)
            width = suffix_ids.shape[1]
            rows_attention = torch.cat([attention[rows], suffix_mask], dim=1)
            logits = model(input_ids=suffix_ids, attention_mask=rows_attention,
                           position_ids=rows_attention.cumsum(-1)[:, -width:] - 1, cache=rows_cache,
                           use_cache=True).logits.float()
            # logits predicting suffix token t: the prefill's last for t = 0, else the suffix's t - 1
            logits = torch.cat([last_logits[rows][:, None], logits[:, :-1]], dim=1)
            token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, suffix_ids[..., None])[..., 0]
            for row, (_, c, a) in enumerate(chunk):
                first = starts[c][a] - stems[c]
                scores[c][legal_actions[c][a]] = token_logprobs[row, first:len(suffixes[row])].sum().item()
    return [{a: s[a] for a in legal} for s, legal in zip(scores, legal_actions, strict=True)]
