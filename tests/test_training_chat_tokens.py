"""Episode chats as TRL multi-turn samples: the env mask covers exactly the environment's text.

Also home of ``tiny_model_dir``, the small random model the training tests
share (``tests.model_fixtures``' model, built once per test process).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from sepo.config import load_params
from sepo.games import GAME_NAMES
from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes
from sepo.training.chat_tokens import ChatTemplateError, chat_tokens
from tests import model_fixtures

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


def scripted_chats(game: str, agent: str) -> list[list[dict[str, str]]]:
    """Chats of ``agent`` against every train-pool opponent of ``game``."""
    specs = [EpisodeSpec(PARAMS.game(game), opponent, "train", seed)
             for seed, opponent in enumerate(PARAMS.pool(game, "train"))]
    return [e.messages for e in play_episodes(specs, ScriptedAgent(PARAMS.strategy(game, agent)))]


@functools.cache
def tiny_model_dir() -> Path:
    """The model-policy tests' small random Qwen3 + BPE tokenizer, in a folder removed at exit."""
    root = tempfile.mkdtemp(prefix="sepo-training-tests-")
    atexit.register(shutil.rmtree, root, True)
    return model_fixtures.tiny_model_dir(root)


@functools.cache
def tiny_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir())


def _replies_with_reasoning(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """The chat with multi-line replies, as a model writes them."""
    return [{**m, "content": f"I look at the state.\n{m['content']}"} if m["role"] == "assistant" else m
            for m in chat]


@pytest.mark.parametrize("game", GAME_NAMES)
def test_pieces_reproduce_the_chat_template_and_mask_only_the_replies(game):
    tokenizer = tiny_tokenizer()
    chat = _replies_with_reasoning(scripted_chats(game, PARAMS.games[game].pools.train[0])[0])
    tokens = chat_tokens(chat, tokenizer)
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    expected = tokenizer(full, add_special_tokens=False)["input_ids"]
    # the sample is the whole rendered chat, minus the template's newline after the last end of turn
    assert tokens.prompt_ids + tokens.completion_ids == expected[:-1]
    assert tokens.completion_ids[-1] == tokenizer.eos_token_id
    assert len(tokens.env_mask) == len(tokens.completion_ids)
    pairs = list(zip(tokens.completion_ids, tokens.env_mask, strict=True))
    model_text = tokenizer.decode([t for t, m in pairs if m])
    replies = [m["content"] for m in chat if m["role"] == "assistant"]
    assert model_text == "".join(r + tokenizer.eos_token for r in replies)
    env_text = tokenizer.decode([t for t, m in pairs if not m])
    later_states = [m["content"] for m in chat if m["role"] == "user"][1:]
    assert all(state in env_text for state in later_states)
    assert "<|im_start|>assistant\n" in env_text and chat[1]["content"] not in env_text
    prompt_text = tokenizer.decode(tokens.prompt_ids)
    assert prompt_text.startswith("<|im_start|>system\n") and prompt_text.endswith("<|im_start|>assistant\n")


def test_a_template_that_rewrites_replies_is_refused():
    tokenizer = tiny_tokenizer()
    rewriting = tokenizer.chat_template.replace("message['content']", "message['content'] | upper")
    chat = _replies_with_reasoning(scripted_chats("ipd", "TitForTat")[0])
    with pytest.raises(ChatTemplateError):
        chat_tokens(chat, _with_template(rewriting))


def _with_template(template: str):
    from transformers import AutoTokenizer

    copy = AutoTokenizer.from_pretrained(tiny_model_dir())
    copy.chat_template = template
    return copy
