"""SFT: corpus selection from the dataset files, and the LoRA path trained, saved and reloaded."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sepo.errors import ConfigError
from sepo.models.loading import load_model_and_tokenizer
from sepo.sft import domain_examples, train_sft
from tests.model_fixtures import PARAMS, scripted_chats, tiny_model_dir


def decision_rows(chats) -> list[dict]:
    """One row per assistant reply: the chat before it and the reply, as the datasets store them."""
    rows = []
    for number, chat in enumerate(chats):
        game = "ipd" if "prisoner" in chat[0]["content"] else "other"
        for k in range(2, len(chat), 2):
            rows.append({"game": game, "episode_id": f"e{number}", "prompt": list(chat[:k]),
                         "completion": [chat[k]]})
    return rows


def write_dataset(folder, rows) -> None:
    folder.mkdir(parents=True)
    for split in ("train", "valid"):
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}.parquet")


def test_episode_corpus_keeps_each_episodes_longest_example(tmp_path):
    chats = [c for c in scripted_chats() if "prisoner" in c[0]["content"]][:3]
    rows = decision_rows(chats)
    write_dataset(tmp_path / "ipd_only", rows[::-1])  # any row order
    data = PARAMS.data.model_copy(update={"datasets": {"ipd_only": PARAMS.data.datasets["multi"].model_copy(
        update={"games": ["ipd"]})}})

    def params(corpus: str):
        return PARAMS.model_copy(update={"data": data, "sft": PARAMS.sft.model_copy(
            update={"datasets": ["ipd_only"], "corpus": corpus})})

    assert len(domain_examples(tmp_path, params("decisions"), "train", None)["ipd"]) == len(rows)
    episodes = domain_examples(tmp_path, params("episodes"), "train", None)["ipd"]
    whole = {json.dumps(e["prompt"] + e["completion"]) for e in episodes}
    assert whole == {json.dumps(list(c)) for c in chats}
    repeated = domain_examples(tmp_path, params("episodes"), "train", 5)["ipd"]
    assert repeated == episodes + episodes[:2]  # beyond the file's episodes, they repeat in order
    kuhn_only = data.model_copy(update={"datasets": {"ipd_only": data.datasets["ipd_only"].model_copy(
        update={"games": ["kuhn"]})}})
    with pytest.raises(ConfigError, match="holds no kuhn examples"):
        domain_examples(tmp_path, params("episodes").model_copy(update={"data": kuhn_only}), "train", 1)


def test_lora_adapter_trains_saves_and_reloads_to_the_same_outputs(tmp_path):
    base = tiny_model_dir(str(tmp_path.parent))
    model, tokenizer = load_model_and_tokenizer(base)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:2])]
    sft = PARAMS.sft.model_copy(update={
        "method": "lora", "completion_only_loss": True, "corpus": "decisions", "max_steps": 3,
        "per_device_train_batch_size": 2, "learning_rate": 1e-2, "logging_steps": 1, "save_steps": 3,
        "lora": PARAMS.sft.lora.model_copy(update={"r": 4, "alpha": 8})})
    probe = torch.tensor([tokenizer(tokenizer.apply_chat_template(rows[0]["prompt"], tokenize=False),
                                    add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        before = model(input_ids=probe).logits
    summary, history, trained = train_sft(model, tokenizer, sft, rows[:8], [], tmp_path / "adapter")
    assert summary["steps"] == 3 and len([h for h in history if "loss" in h]) == 3
    assert 0 < summary["trainable_parameters"] < sum(p.numel() for p in trained.parameters())
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    trained.eval()
    with torch.no_grad():
        after = trained(input_ids=probe).logits
    assert not torch.allclose(before, after)  # the adapter learned something
    for merge in (False, True):
        reloaded, _ = load_model_and_tokenizer(tmp_path / "adapter", merge_adapter=merge)
        with torch.no_grad():
            again = reloaded(input_ids=probe).logits
        assert torch.allclose(after, again, atol=1e-5)


def test_a_killed_sft_run_resumes_to_the_same_model_and_a_changed_one_starts_over(tmp_path, monkeypatch, capsys):
    """Checkpoints live outside the model folder; only a run with the same identity resumes from them."""
    from transformers import Trainer

    from sepo.sft import sft_identity

    base = tiny_model_dir(str(tmp_path.parent))
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:2])]
    sft = PARAMS.sft.model_copy(update={
        "corpus": "decisions", "max_steps": 4, "per_device_train_batch_size": 2, "learning_rate": 1e-2,
        "logging_steps": 1, "eval_steps": 2, "save_steps": 2, "save_total_limit": 2})
    identity = sft_identity(sft, base, rows[:8], rows[8:10])

    summaries = {}

    def trained(name: str, checkpoints, run_identity=identity) -> dict[str, torch.Tensor]:
        model, tokenizer = load_model_and_tokenizer(base)
        summary, history, _ = train_sft(model, tokenizer, sft, rows[:8], rows[8:10], tmp_path / name,
                                        checkpoints, identity=run_identity)
        assert summary["steps"] == 4
        summaries[name] = summary, history
        return load_model_and_tokenizer(tmp_path / name)[0].state_dict()

    whole = trained("whole", tmp_path / "ckpt-whole")
    step_losses = [h["loss"] for h in summaries["whole"][1] if "loss" in h]
    assert len(step_losses) == 4 and summaries["whole"][0]["train_loss"] == round(sum(step_losses) / 4, 4)
    assert sorted(p.name for p in (tmp_path / "whole").iterdir() if p.is_dir()) == []  # only the model
    assert not list((tmp_path / "ckpt-whole").glob("checkpoint-*"))  # served; a forced rerun starts over

    save_model = Trainer.save_model

    def killed(self, output_dir=None, *args, **kwargs):  # checkpoints save; the final model does not
        if "checkpoint-" not in str(output_dir):
            raise KeyboardInterrupt("killed")
        return save_model(self, output_dir, *args, **kwargs)

    with monkeypatch.context() as patch:  # the run dies after its last checkpoint, before the model is saved
        patch.setattr(Trainer, "save_model", killed)
        with pytest.raises(KeyboardInterrupt):
            trained("killed", tmp_path / "ckpt")
    assert not (tmp_path / "killed").exists()
    shutil.rmtree(tmp_path / "ckpt" / "checkpoint-4")  # as if killed during step 3
    capsys.readouterr()
    training_step, steps = Trainer.training_step, []

    def counted(self, *args, **kwargs):
        steps.append(self.state.global_step)
        return training_step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "training_step", counted)
        resumed = trained("resumed", tmp_path / "ckpt")
    assert "resuming from" in capsys.readouterr().out
    assert steps == [2, 3]  # only the steps after checkpoint-2 were trained again
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    # the whole run's mean loss, not the Trainer's mean over the two resumed steps
    assert summaries["resumed"][0]["train_loss"] == summaries["whole"][0]["train_loss"]

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "save_model", killed)
        with pytest.raises(KeyboardInterrupt):
            trained("killed", tmp_path / "ckpt")
    other = {**identity, "corpus": "another corpus"}
    trained("other", tmp_path / "ckpt", other)
    out = capsys.readouterr().out
    assert "resuming from" not in out and "held checkpoints of another run (changed: corpus)" in out
    assert [p.name for p in tmp_path.joinpath("ckpt").glob("stale-*/checkpoint-*")] == ["checkpoint-2",
                                                                                       "checkpoint-4"]


def test_mean_training_loss_weights_each_log_by_the_steps_it_covers():
    from sepo.sft import mean_training_loss

    history = [{"loss": 1.0, "step": 10}, {"eval_loss": 9.0, "step": 10}, {"loss": 2.0, "step": 15},
               {"train_runtime": 3.0, "step": 15}]
    assert mean_training_loss(history) == round((10 * 1.0 + 5 * 2.0) / 15, 4)
    assert mean_training_loss([{"eval_loss": 1.0, "step": 2}]) is None
