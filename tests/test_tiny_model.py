"""The embedded tiny model: tokenizer properties, the Qwen3 shape, save/load, the base_model stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer

from sepo.models.tiny import TURN_END, build_tiny_model, chat_texts, train_tokenizer
from stages.base_model import main as base_model_main
from tests.model_fixtures import PARAMS, ROOT, scripted_chats, tiny_model_dir


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(tiny_model_dir(str(tmp_path_factory.getbasetemp())))


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_survives_encoding_and_decoding(tokenizer, text):
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_a_rendered_prompt_is_a_token_prefix_of_prompt_plus_reply(tokenizer):
    """What TRL's completion mask and the policy's prefix reuse both rely on."""
    for chat in scripted_chats():
        for k in range(2, len(chat), 2):
            prompt = tokenizer.apply_chat_template(list(chat[:k]), add_generation_prompt=True, tokenize=False)
            whole = tokenizer.apply_chat_template(list(chat[:k + 1]), tokenize=False)
            assert whole.startswith(prompt) and whole.endswith(f"{TURN_END}\n")
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            assert tokenizer(whole, add_special_tokens=False)["input_ids"][:len(prompt_ids)] == prompt_ids


def test_no_token_spans_a_newline_or_joins_digits(tokenizer):
    for token in range(len(tokenizer)):
        piece = tokenizer.decode([token])
        assert piece == "\n" or "\n" not in piece
        assert sum(c.isdigit() for c in piece) <= 1 or piece in tokenizer.all_special_tokens


def test_the_default_tiny_model_has_the_params_shape_and_round_trips(tmp_path):
    tokenizer = train_tokenizer(chat_texts(scripted_chats()), 600, PARAMS.model.tiny.max_token_length)
    model = build_tiny_model(tokenizer, PARAMS.model.tiny, seed=0)
    sizes = PARAMS.model.tiny
    assert model.config.hidden_size == sizes.hidden_size and model.config.num_key_value_heads == 2
    assert model.config.head_dim * sizes.num_attention_heads == sizes.hidden_size
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert 0.9e6 < sum(p.numel() for p in model.parameters()) < 1.2e6
    tokenizer.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                              strict=True))
    assert AutoTokenizer.from_pretrained(tmp_path).eos_token == TURN_END


def scripted_sft_data(folder: Path) -> Path:
    """The SFT datasets' layout (``<dataset>/train.parquet``) from scripted episodes, one row per chat."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sepo.rollout import EpisodeSpec, ScriptedAgent, play_episodes

    for dataset, spec in PARAMS.data.datasets.items():
        rows = []
        for game in spec.games:
            agent = ScriptedAgent(PARAMS.pool(game, "shift")[-1])
            specs = [EpisodeSpec(PARAMS.game(game), opponent, "train", seed)
                     for seed, opponent in enumerate(PARAMS.pool(game, "train"))]
            for number, played in enumerate(play_episodes(specs, agent)):
                chat = list(played.messages)
                rows.append({"game": game, "episode_id": f"{game}-{number}", "prompt": chat[:-1],
                             "completion": chat[-1:]})
        (folder / dataset).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / dataset / "train.parquet")
    return folder


def test_base_model_stage_builds_the_tiny_base_with_its_card_and_swaps_it_in(tmp_path):
    """The folder is built aside: a stale file of an earlier build does not survive."""
    from huggingface_hub import ModelCard

    data = scripted_sft_data(tmp_path / "sft")
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    out = tmp_path / "base"
    out.mkdir()
    (out / "stale.bin").write_text("an earlier build")
    assert base_model_main(["--params", str(params), "--data", str(data), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "README.md", "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json"])
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and "Qwen3 (randomly initialised)" in card.text
    model = AutoModelForCausalLM.from_pretrained(out)
    assert f"| `parameters` | {sum(p.numel() for p in model.parameters()):,} |" in card.text


def test_base_model_stage_records_a_hub_id_without_downloading(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("  base: tiny ", "  base: Qwen/Qwen3.5-4B "))
    assert base_model_main(["--params", str(params), "--out", str(tmp_path / "base")]) == 0
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["hub_model.json"]
    recorded = json.loads((tmp_path / "base" / "hub_model.json").read_text())
    assert {k: recorded[k] for k in ("model_id", "revision", "trust_remote_code")} == {
        "model_id": "Qwen/Qwen3.5-4B", "revision": "main", "trust_remote_code": False}
    # offline here: the revision is recorded as not resolved to a commit, never as if it were one
    assert recorded["commit"] is None and "NOT resolved" in recorded["note"]
    params.write_text((ROOT / "params.yaml").read_text().replace("  base: tiny ", "  base: not-a-hub-id "))
    assert base_model_main(["--params", str(params), "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.strip().startswith("base_model: error: model.base: expected 'tiny'")
