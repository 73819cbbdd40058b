"""A stage that fails keeps what it produced before: folder outputs are built aside, then moved into place."""

from __future__ import annotations

from pathlib import Path

import pytest

from sepo.io import partial_folder, replace_folder
from sepo.stage import Stage


def test_replace_folder_swaps_in_the_new_folder_and_leaves_no_debris(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "old.bin").write_text("old")
    built = partial_folder(out)
    built.mkdir()
    (built / "new.bin").write_text("new")
    replace_folder(built, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft"]


def test_replace_folder_creates_a_missing_output(tmp_path):
    built = partial_folder(tmp_path / "model")
    built.mkdir()
    replace_folder(built, tmp_path / "model")
    assert (tmp_path / "model").is_dir() and not built.exists()


def test_a_failed_sft_run_keeps_the_previous_model(tmp_path, monkeypatch):
    """The trainer raising mid-run must not cost the model already in --out."""
    import sepo.sft
    from stages import sft as sft_stage

    data = Path(__file__).resolve().parents[1] / "data" / "sft"
    base = Path(__file__).resolve().parents[1] / "data" / "models" / "base"
    if not (base / "config.json").is_file() or not (data / "multi" / "train.parquet").is_file():
        pytest.skip("needs the pipeline's data/sft and data/models/base (dvc pull)")
    out = tmp_path / "sft"
    out.mkdir()
    (out / "model.safetensors").write_text("the previous run's model")

    def crash(model, tokenizer, sft, train, valid, building, checkpoints, identity):
        Path(building).mkdir(parents=True, exist_ok=True)
        (Path(building) / "half-written").write_text("")
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(sepo.sft, "train_sft", crash)
    with pytest.raises(RuntimeError, match="killed mid-training"):
        sft_stage.main(["--data", str(data), "--base", str(base), "--out", str(out),
                        "--checkpoints", str(tmp_path / "checkpoints"),
                        "--metrics", str(tmp_path / "sft.json"), "--plots", str(tmp_path / "plots")])
    assert (out / "model.safetensors").read_text() == "the previous run's model"
    assert not (tmp_path / "sft.json").exists()


def test_a_stage_reports_a_bad_input_as_one_line_and_status_2(capsys):
    stage = Stage("demo", "Demo stage: does nothing.\n\nMore text.")
    stage.parse([])
    assert stage.input_error(ValueError("--data x: missing")) == 2
    assert capsys.readouterr().err == "demo: error: --data x: missing\n"
    assert stage.parser.description == "Demo stage: does nothing."
    assert stage.wall_time_s() >= 0.0


@pytest.mark.parametrize(("report", "message"), [
    (None, "no validation report; run the validate stage first"),
    ('{"success": false, "datasets": {"kuhn": {"failed": ["episode_replays_in_engine"]}}}',
     "failed validation (kuhn: episode_replays_in_engine)"),
    ("not json", "unreadable"),
])
def test_sft_launched_directly_refuses_data_that_failed_validation(tmp_path, capsys, report, message):
    from stages import sft as sft_stage

    validation = tmp_path / "sft_validation.json"
    if report is not None:
        validation.write_text(report)
    out = tmp_path / "sft"
    assert sft_stage.main(["--validation", str(validation), "--out", str(out),
                           "--metrics", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() and not (tmp_path / "m.json").exists()
