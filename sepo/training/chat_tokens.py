"""One episode's chat as TRL's (prompt ids, completion ids, env mask).

The training sequence of an episode is exactly the chat template's rendering
of its whole chat, the text the model conditions on at every later decision:

- ``prompt_ids``: system rules + first state + the assistant turn's opening
  (the generation prompt);
- ``completion_ids``: each reply followed by the environment's text up to the
  next reply (end of turn, next user state, next assistant opening), ending
  with the last reply's end-of-turn token;
- ``env_mask``: 1 on the model's tokens (a reply's content and the
  end-of-turn token that closes it, which the model must learn to emit),
  0 on the environment's.  The end-of-turn token is whichever token the
  policy would stop at (the eos token or any special added token, as in
  ``sepo.policies.decoding.stop_ids_of``) that the template writes right
  after the reply: ChatML's ``<|im_end|>`` is the eos token, but a
  template may close a turn with a token that is not (Gemma's
  ``<end_of_turn>``-style markers), and that token must be trained too.

The reply tokens are the template's tokenization of the reply text, not the
sampled ids: those can differ from it by a trailing newline (the policy
stops at a finished ``Action:`` line, the chat keeps the stripped text) or a
non-canonical BPE split.  Training on the chat's own tokens keeps every
later turn's context identical to what the model saw when it acted.

The rendering is cut into pieces by rendering each prefix of the chat with
the generation prompt; each piece is tokenized on its own and the
concatenation is checked against the tokenization of the whole text, so a
template whose pieces do not tokenize independently (or that rewrites
earlier turns, like templates that drop past reasoning) fails loudly
instead of training on misaligned tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sepo.rollout import Message


class ChatTemplateError(ValueError):
    """The chat template does not render an episode as a growing, token-stable text."""


@dataclass(frozen=True)
class ChatTokens:
    """An episode as TRL's multi-turn sample."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]


def _render(tokenizer, messages: Sequence[Message], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False,
                                         add_generation_prompt=generation_prompt)


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def end_of_turn_markers(tokenizer) -> list[str]:
    """Texts that may close a reply: the eos token and every special added token, longest first."""
    markers = {tokenizer.eos_token} | {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    return sorted((m for m in markers if m), key=len, reverse=True)


def chat_tokens(messages: Sequence[Message], tokenizer) -> ChatTokens:
    """Split an episode's chat (system, user, assistant, user, ...) into TRL's fields (see module doc)."""
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not replies:
        raise ValueError("an episode chat needs at least one assistant reply")
    full = _render(tokenizer, messages, False)
    prompt = _render(tokenizer, messages[:replies[0]], True)
    markers = end_of_turn_markers(tokenizer)
    pieces: list[tuple[str, int]] = []  # (text, 1 if the model's)
    position = len(prompt)
    for i in replies:
        opening = _render(tokenizer, messages[:i], True)
        if len(opening) < position or not full.startswith(opening):
            raise ChatTemplateError(f"the rendering of the chat up to message {i} is not a prefix of "
                                    "the whole chat")
        if len(opening) > position:
            pieces.append((full[position:len(opening)], 0))
        content = messages[i]["content"]
        closing = next((m for m in markers if full.startswith(content + m, len(opening))), "")
        reply = content + closing
        if not full.startswith(reply, len(opening)):
            raise ChatTemplateError(f"the template rewrites reply {i}; its text is not in the rendered chat")
        pieces.append((reply, 1))
        position = len(opening) + len(reply)
    prompt_ids = _encode(tokenizer, prompt)
    completion_ids: list[int] = []
    env_mask: list[int] = []
    for text, is_model in pieces:
        ids = _encode(tokenizer, text)
        completion_ids += ids
        env_mask += [is_model] * len(ids)
    if prompt_ids + completion_ids != _encode(tokenizer, full[:position]):
        raise ChatTemplateError("the chat's pieces do not tokenize like the whole chat; the template's turn "
                                "boundaries must fall on token boundaries")
    return ChatTokens(prompt_ids, completion_ids, env_mask)
