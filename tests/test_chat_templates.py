"""``chat_tokens`` and ``env_mask`` under chat templates with two features the paper models' templates have.

The templates below are written for these tests, for their features; they
are not the real models' files:

- ``THINK_TEMPLATE`` opens every assistant turn with an empty ``<think>``
  block, the generation prompt included (as templates with thinking turned
  off do), and renders a reply's own ``<think>`` block as written;
  ``DROPPING_TEMPLATE`` drops the reasoning of past replies, as some
  reasoning models' templates do;
- ``TURN_TEMPLATE`` closes every turn with ``<end_of_turn>``, a special
  token that is not the tokenizer's eos token.
"""

from __future__ import annotations

import functools

import pytest

from sepo.policies.decoding import stop_ids_of
from sepo.training.chat_tokens import ChatTemplateError, chat_tokens
from tests.test_training_chat_tokens import scripted_chats, tiny_model_dir

THINK_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
)

#: like THINK_TEMPLATE, but a reply's reasoning is dropped once a later user turn follows it
DROPPING_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'] %}"
    "{%- if not loop.last %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

TURN_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + message['content'] + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)


@functools.cache
def _tokenizer(template: str, extra_special: tuple[str, ...] = ()):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir())
    if extra_special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_special)})
    tokenizer.chat_template = template
    return tokenizer


def _chat(reply: str) -> list[dict[str, str]]:
    """An IPD episode whose replies are ``reply`` followed by the scripted action line."""
    chat = scripted_chats("ipd", "TitForTat")[0]
    return [{**m, "content": reply + m["content"]} if m["role"] == "assistant" else m for m in chat]


def _masked(tokens, tokenizer, model: bool) -> str:
    return tokenizer.decode([t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True)
                             if bool(m) == model])


def test_a_replys_own_think_block_is_the_models_and_the_templates_empty_ones_the_environments():
    tokenizer = _tokenizer(THINK_TEMPLATE)
    chat = _chat("<think>\nThey cooperated last round.\n</think>\n")
    tokens = chat_tokens(chat, tokenizer)
    replies = [m["content"] for m in chat if m["role"] == "assistant"]
    assert _masked(tokens, tokenizer, model=True) == "".join(r + "<|im_end|>" for r in replies)
    assert _masked(tokens, tokenizer, model=False).count("<think>\n\n</think>\n\n") == len(replies) - 1
    # every reply's reasoning is the model's, and the sample is the rendered chat itself
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    assert tokenizer.decode(tokens.prompt_ids + tokens.completion_ids) == full.rstrip("\n")


def test_replies_without_reasoning_train_on_the_answer_after_the_templates_empty_think_block():
    tokenizer = _tokenizer(THINK_TEMPLATE)
    chat = _chat("")
    tokens = chat_tokens(chat, tokenizer)
    assert tokenizer.decode(tokens.prompt_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<think>" not in _masked(tokens, tokenizer, model=True)
    assert _masked(tokens, tokenizer, model=False).count("<think>\n\n</think>\n\n") == \
        sum(m["role"] == "assistant" for m in chat) - 1  # the first one is in the prompt


def test_a_template_that_drops_past_reasoning_is_refused():
    chat = _chat("<think>\nThey cooperated last round.\n</think>\n")
    with pytest.raises(ChatTemplateError):
        chat_tokens(chat, _tokenizer(DROPPING_TEMPLATE))


def test_an_end_of_turn_token_that_is_not_eos_is_trained_and_stops_the_policy(tmp_path):
    tokenizer = _tokenizer(TURN_TEMPLATE, ("<start_of_turn>", "<end_of_turn>"))
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn != tokenizer.eos_token_id
    chat = _chat("")
    tokens = chat_tokens(chat, tokenizer)
    replies = [m["content"] for m in chat if m["role"] == "assistant"]
    assert _masked(tokens, tokenizer, model=True) == "".join(r + "<end_of_turn>" for r in replies)
    assert tokens.completion_ids[-1] == end_of_turn and tokens.env_mask[-1] == 1
    env = _masked(tokens, tokenizer, model=False)
    assert "<end_of_turn>" in env  # the user turns' closing markers are the environment's
    assert env.count("<end_of_turn>") == sum(m["role"] == "user" for m in chat) - 1

    class Config:  # what stop_ids_of reads of a model: its generation config's eos id
        eos_token_id = tokenizer.eos_token_id

    model = type("Model", (), {"generation_config": Config})()
    assert end_of_turn in stop_ids_of(model, tokenizer)
