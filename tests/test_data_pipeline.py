"""The DVC side of the SFT data: params checked before any output, reproducible files, the release remote."""

import copy
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(args, cwd, timeout=600):
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def generate_outs() -> dict[str, str]:
    """path -> md5 of every output of the `generate` stage, as dvc.lock records them."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for out in lock["stages"]["generate"]["outs"]}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _set(raw, dotted, value):
    raw = copy.deepcopy(raw)
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(("dotted", "value", "named"), [
    ("data.datasets.multi.games", ["ipd", "chess"], "data.datasets.multi.games.1"),
    ("data.datasets.kuhn.train_examples", -5, "data.datasets.kuhn.train_examples"),
    ("games.ipd.demonstrators", {"TFT": 0.5, "Grim": 0.4}, "games.ipd.demonstrators"),
])
def test_bad_params_fail_before_any_output_with_one_line(tmp_path, dotted, value, named):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_set(RAW, dotted, value), sort_keys=False))
    result = run([sys.executable, str(ROOT / "stages/generate.py"), "--params", str(params),
                  "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_validate_with_bad_params_writes_no_report(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_set(RAW, "validate.max_tokens", 0), sort_keys=False))
    result = run([sys.executable, str(ROOT / "stages/validate.py"), "--params", str(params),
                  "--data", str(tmp_path), "--report", str(tmp_path / "r.json"),
                  "--metrics", str(tmp_path / "m.json")], cwd=tmp_path)
    assert result.returncode == 2 and "validate.max_tokens" in result.stderr
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "m.json").exists()


@pytest.mark.slow
def test_regenerating_in_a_fresh_process_reproduces_dvc_lock(tmp_path):
    """Paper-sized datasets from the default params, byte for byte (about 15 s)."""
    out = tmp_path / "sft"
    result = run([sys.executable, str(ROOT / "stages/generate.py"), "--params", str(ROOT / "params.yaml"),
                  "--out", str(out)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path, expected in generate_outs().items():
        assert md5(out / Path(path).relative_to("data/sft")) == expected, path


def _would_be_committed(root: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore: what a clone of the next commit holds."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    return [p for p in listed.split("\0") if p and (root / p).is_file()]


def output_digests(root: Path) -> dict[str, str]:
    """md5 of every file under every output that ``dvc.lock`` records (folders file by file)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    digests = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            path = root / out["path"]
            files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
            for f in files:
                digests[str(f.relative_to(root))] = md5(f)
    return digests


@pytest.mark.slow
def test_a_fresh_clone_pulls_the_released_data_from_the_default_remote(tmp_path):
    """No credentials, no network: the default remote is a folder committed in the repository.

    The clone is the set of files a clone of the next commit would hold (so the
    test also runs before the lead commits); then ``dvc pull`` must restore
    every output of ``generate`` with the md5 of ``dvc.lock``, and ``dvc status``
    must find the pipeline up to date (``dvc repro`` would do nothing).
    """
    clone = tmp_path / "clone"
    for relative in _would_be_committed(ROOT):
        target = clone / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    assert [p.name for p in (clone / "data").iterdir()] == ["README.md"] and (clone / "dvc.lock").is_file()
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    dvc = [sys.executable, "-m", "dvc"]

    pulled = run([*dvc, "pull"], cwd=clone)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for path, expected in generate_outs().items():
        assert md5(clone / path) == expected, path

    status = run([*dvc, "status"], cwd=clone)  # every stage: the models are released too
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    evaluated = run([sys.executable, "-m", "sepo.cli", "evaluate", "--policy", "model:data/models/sft",
                     "--game", "ipd", "--episodes", "1"], cwd=clone)
    assert evaluated.returncode == 0 and "safety" in evaluated.stdout, evaluated.stdout + evaluated.stderr

    # a bad value under `dvc repro`: stage params fails first, in one line, before DVC removes any output
    # (the evaluate stages would be the first to rerun, and DVC deletes a stage's outputs before its command)
    before = output_digests(clone)
    assert len(before) > 100 and "data/models/sft/model.safetensors" in before
    (clone / "params.yaml").write_text(yaml.safe_dump(_set(RAW, "eval.episodes", 0), sort_keys=False))
    repro = run([*dvc, "repro"], cwd=clone)
    assert repro.returncode != 0
    errors = [line for line in (repro.stdout + repro.stderr).splitlines() if line.startswith("params: error:")]
    assert len(errors) == 1 and "eval.episodes" in errors[0], repro.stdout + repro.stderr
    assert output_digests(clone) == before  # every output, cached and cache: false alike, byte for byte


def test_the_release_remote_holds_every_cached_output_of_dvc_lock():
    """The release can never go stale: each output DVC caches has its objects in ``release/files/md5``."""
    import json

    from dvc.repo import Repo

    remote = ROOT / "release" / "files" / "md5"
    missing = []
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            for out in stage.outs:
                if not out.use_cache or out.hash_info is None or not out.hash_info.value:
                    continue
                value = out.hash_info.value
                obj = remote / value[:2] / value[2:]
                if not obj.is_file():
                    missing.append(f"{stage.addressing}: {out.def_path}")
                elif value.endswith(".dir"):
                    for entry in json.loads(obj.read_text()):
                        if not (remote / entry["md5"][:2] / entry["md5"][2:]).is_file():
                            missing.append(f"{stage.addressing}: {out.def_path}/{entry['relpath']}")
    assert not missing, "not released; run `dvc push` and commit release/:\n" + "\n".join(missing)
