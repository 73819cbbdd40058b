"""A small random Qwen3 + BPE tokenizer for the model-policy tests (built once per session).

The shape is the pipeline's tiny model shrunk further: the tests check
mechanics (batching, caching, fallback, saving), not what a model learned.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sepo.config import load_params
from sepo.models.tiny import build_tiny_model, chat_texts, train_tokenizer
from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
GAMES = ("ipd", "auction", "negotiation", "negotiation_items", "kuhn")


@cache
def scripted_chats() -> tuple[tuple[dict[str, str], ...], ...]:
    """Whole chats of scripted episodes in every domain (the tokenizer's corpus)."""
    chats = []
    for game in GAMES:
        agent = ScriptedAgent(PARAMS.pool(game, "shift")[-1])
        specs = [EpisodeSpec(PARAMS.game(game), opponent, "train", seed)
                 for seed, opponent in enumerate(PARAMS.pool(game, "train"))]
        chats += [tuple(played.messages) for played in play_episodes(specs, agent)]
    return tuple(chats)


@cache
def tiny_model_dir(tmp_root: str) -> Path:
    """Save the random model and tokenizer under ``tmp_root`` once; return the folder."""
    folder = Path(tmp_root) / "tiny-model"
    sizes = PARAMS.model.tiny.model_copy(update={
        "vocab_size": 420, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 64})
    tokenizer = train_tokenizer(chat_texts(scripted_chats()), sizes.vocab_size, sizes.max_token_length)
    tokenizer.save_pretrained(folder)
    build_tiny_model(tokenizer, sizes, seed=0).save_pretrained(folder)
    return folder
