"""Step logs: a real SFTTrainer history through dvclive.Live, read back by step, and DVCLive can resume it."""

from __future__ import annotations

import math

import pytest

from sepo.step_log import metric_file, read_step_log, trainer_rows, write_step_log
from tests.model_fixtures import PARAMS, scripted_chats, tiny_model_dir
from tests.test_sft import decision_rows


@pytest.fixture(scope="module")
def sft_history(tmp_path_factory):
    """Four optimizer steps of TRL's SFTTrainer on the tiny model, evaluated at steps 2 and 4."""
    from sepo.models.loading import load_model_and_tokenizer
    from sepo.sft import train_sft

    folder = tmp_path_factory.mktemp("sft")
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir(str(folder)))
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:2])]
    sft = PARAMS.sft.model_copy(update={"corpus": "decisions", "max_steps": 4, "per_device_train_batch_size": 2,
                                        "logging_steps": 1, "eval_steps": 2, "save_steps": 4})
    _, history, _ = train_sft(model, tokenizer, sft, rows[:8], rows[:4], folder / "model")
    return history


def test_a_trainer_history_logs_each_optimizer_step_once_with_dvclives_names(sft_history, tmp_path):
    write_step_log(tmp_path / "log", trainer_rows(sft_history))
    rows = read_step_log(tmp_path / "log")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # training and evaluation logs share their step
    assert all(math.isfinite(r["loss"]) and r["learning_rate"] >= 0 for r in rows)
    assert [int(r["step"]) for r in rows if "eval/loss" in r] == [2, 4]
    assert metric_file(tmp_path / "log", "eval/loss").is_file()  # DVCLive's layout: plots/metrics/eval/loss.tsv
    assert not any("runtime" in name or "per_second" in name or name == "epoch" for r in rows for name in r)
    expected = [h["eval_loss"] for h in sft_history if "eval_loss" in h]
    assert [r["eval/loss"] for r in rows if "eval/loss" in r] == pytest.approx(expected)


def test_dvclive_itself_resumes_the_written_log_after_its_last_step(tmp_path):
    from dvclive import Live

    write_step_log(tmp_path / "log", [{"step": 3, "reward": 0.5}, {"step": 7, "reward": 0.25}])
    live = Live(dir=str(tmp_path / "log"), resume=True, save_dvc_exp=False, dvcyaml=None)
    assert live.step == 8
    assert live.summary["reward"] == 0.25


def test_unmeasured_values_are_left_out_and_a_rewrite_is_the_same_bytes(tmp_path):
    rows = [{"step": 1, "reward": 1.0, "kl": math.nan, "note": "text", "flag": True},
            {"step": 2, "reward": 2.0, "kl": 0.125, "inf": math.inf}]
    write_step_log(tmp_path / "log", rows)
    assert read_step_log(tmp_path / "log") == [{"step": 1.0, "reward": 1.0},
                                               {"step": 2.0, "reward": 2.0, "kl": 0.125}]
    files = sorted(p for p in (tmp_path / "log").rglob("*") if p.is_file())
    first = {p: p.read_bytes() for p in files}
    write_step_log(tmp_path / "log", rows)
    assert {p: p.read_bytes() for p in sorted(p for p in (tmp_path / "log").rglob("*") if p.is_file())} == first


def test_a_failed_write_keeps_the_previous_log(tmp_path):
    write_step_log(tmp_path / "log", [{"step": 1, "reward": 1.0}])

    def broken():
        yield {"step": 1, "reward": 9.0}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_step_log(tmp_path / "log", broken())
    assert read_step_log(tmp_path / "log") == [{"step": 1.0, "reward": 1.0}]
