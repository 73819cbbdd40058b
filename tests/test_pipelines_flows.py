"""Prefect flows against a tiny DVC project, under one Prefect test harness for the session.

The DVC project is made of a few one-line Python stages, so these tests
check the orchestration (order, skipping, retries, artifacts, fan-out), not
the real pipeline's runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from distributed import LocalCluster
from prefect.artifacts import Artifact
from prefect.testing.utilities import prefect_test_harness

from pipelines.dvc_commands import stage_changes
from pipelines.evaluation_fanout import (
    DASK_ADDRESS_ENV,
    EvaluationShard,
    dask_task_runner,
    evaluate_shard_here,
    evaluation_fanout,
    merge_results,
)
from pipelines.experiment_sweep import comparison_rows, experiment_sweep
from pipelines.scheduled_evaluation import scheduled_evaluation
from pipelines.sepo_pipeline import main as sepo_pipeline_main
from pipelines.sepo_pipeline import sepo_pipeline
from sepo.config import load_params
from sepo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# Every stage logs its name to ran.log (so a test sees which commands ran) and
# exits with the number in fail_<name> when that file exists (failure injection).
STEP = """\
import json, pathlib, sys, time, yaml
name = sys.argv[1]
started = time.time()
if pathlib.Path("slow").exists() and name.startswith("train_"):  # a training stage that takes a while
    time.sleep(2)
    pathlib.Path(f"span_{name}").write_text(f"{started} {time.time()}")
with open("ran.log", "a") as log:
    log.write(name + "\\n")
fail = pathlib.Path(f"fail_{name}")
if fail.exists():
    sys.exit(int(fail.read_text()))
if name == "prepare":
    pathlib.Path("prepared.txt").write_text("prepared")
elif name.startswith("train_"):
    pathlib.Path(f"model_{name[6:]}.txt").write_text(pathlib.Path("prepared.txt").read_text() + name)
else:
    seed = yaml.safe_load(open("params.yaml"))["eval"]["seed"]
    json.dump({"score": seed + 0.5, "models": 2}, open("metrics.json", "w"))
"""

TINY_PIPELINE = {"stages": {
    "prepare": {"cmd": f"{sys.executable} step.py prepare", "deps": ["step.py"], "outs": ["prepared.txt"]},
    "train": {"foreach": ["x", "y"], "do": {"cmd": f"{sys.executable} step.py train_${{item}}",
                                            "deps": ["prepared.txt"], "outs": ["model_${item}.txt"]}},
    "score": {"cmd": f"{sys.executable} step.py score", "deps": ["model_x.txt", "model_y.txt"],
              "params": ["eval.seed"], "metrics": [{"metrics.json": {"cache": False}}]},
}}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_project(path: Path, pipeline: dict | None = None, orchestration: dict | None = None) -> Path:
    """A git + DVC repository with the real params.yaml (tuned) and a tiny pipeline, committed."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["orchestration"].update(orchestration or {})
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (path / "step.py").write_text(STEP)
    (path / "dvc.yaml").write_text(yaml.safe_dump(pipeline if pipeline is not None else TINY_PIPELINE,
                                                  sort_keys=False))
    (path / ".gitignore").write_text("ran.log\nfail_*\n")
    _git(path, "add", "-A")
    _git(path, "-c", "user.name=sepo tests", "-c", "user.email=tests@example.invalid", "commit", "-q",
         "-m", "tiny pipeline")
    return path


def ran(repo: Path) -> list[str]:
    log = repo / "ran.log"
    return log.read_text().split() if log.exists() else []


def table(key: str) -> list[dict]:
    artifact = Artifact.get(key)
    assert artifact is not None, key
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DVC_NO_ANALYTICS", "1")
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        patch.delenv(DASK_ADDRESS_ENV, raising=False)
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture(scope="module")
def dask_cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def test_pipeline_runs_every_stage_once_and_a_second_run_does_no_stage_work(tmp_path):
    repo = make_project(tmp_path / "project")

    first = sepo_pipeline(str(repo), retries=0)

    assert [(r.stage, r.status) for r in first] == [
        ("prepare", "ran"), ("train@x", "ran"), ("train@y", "ran"), ("score", "ran")]
    assert ran(repo) == ["prepare", "train_x", "train_y", "score"]
    assert json.loads((repo / "metrics.json").read_text())["score"] == 0.5
    assert {r["metric"]: r["value"] for r in table("sepo-pipeline-metrics")} == {"score": 0.5, "models": 2}

    second = sepo_pipeline(str(repo), retries=0)

    assert [r.status for r in second] == ["up to date"] * 4
    assert ran(repo) == ["prepare", "train_x", "train_y", "score"]  # no stage command ran again
    assert [row["status"] for row in table("sepo-pipeline-stages")] == ["up to date"] * 4


def test_a_failed_stage_fails_the_flow_by_name_after_its_retries_and_keeps_earlier_outputs(tmp_path):
    repo = make_project(tmp_path / "project")
    (repo / "fail_train_y").write_text("1")

    state = sepo_pipeline(str(repo), retries=1, retry_backoff_seconds=0, return_state=True)

    assert state.is_failed()
    assert "train@y" in state.message
    assert ran(repo) == ["prepare", "train_x", "train_y", "train_y"]  # try + 1 retry; score never started
    assert (repo / "prepared.txt").read_text() == "prepared"
    assert (repo / "model_x.txt").read_text() == "preparedtrain_x"
    assert stage_changes(repo, "prepare") == {} and stage_changes(repo, "train@x") == {}
    rows = table("sepo-pipeline-stages")
    assert [(r["stage"], r["status"], r["attempts"]) for r in rows][-1] == ("train@y", "failed", 2)

    # exit 2 is a wrong parameter or input: retrying cannot help, so it fails at once
    (repo / "fail_train_y").write_text("2")
    state = sepo_pipeline(str(repo), retries=1, retry_backoff_seconds=0, return_state=True)

    assert state.is_failed() and "train@y" in state.message
    assert ran(repo)[4:] == ["train_y"]  # prepare and train@x were up to date; one attempt


def test_two_jobs_run_independent_stages_side_by_side_and_commit_each_to_dvc_lock(tmp_path):
    repo = make_project(tmp_path / "project")
    (repo / "slow").write_text("")

    first = sepo_pipeline(str(repo), retries=0, jobs=2)

    assert sorted((r.stage, r.status) for r in first) == [
        ("prepare", "ran"), ("score", "ran"), ("train@x", "ran"), ("train@y", "ran")]
    assert ran(repo)[0] == "prepare" and ran(repo)[-1] == "score"  # dependencies first, as dvc repro
    (x_start, x_end), (y_start, y_end) = (map(float, (repo / f"span_train_{n}").read_text().split()) for n in "xy")
    assert x_start < y_end and y_start < x_end, "the two training stages did not overlap"
    assert json.loads((repo / "metrics.json").read_text())["score"] == 0.5
    # each stage was committed as `dvc repro` would have: DVC sees every stage up to date
    assert all(stage_changes(repo, stage) == {} for stage in ("prepare", "train@x", "train@y", "score"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"prepare", "train@x", "train@y", "score"}
    assert lock["score"]["params"]["params.yaml"] == {"eval.seed": 0}

    second = sepo_pipeline(str(repo), retries=0, jobs=2)

    assert [r.status for r in second] == ["up to date"] * 4
    assert len(ran(repo)) == 4

    # a rerun starts from what dvc repro starts from: the stage's old outputs are gone before its command
    (repo / "fail_score").write_text("1")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["eval"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    state = sepo_pipeline(str(repo), retries=0, jobs=2, return_state=True)
    assert state.is_failed() and "score" in state.message
    assert not (repo / "metrics.json").exists()


def test_with_two_jobs_a_failed_stage_stops_new_stages_and_fails_the_flow_by_name(tmp_path):
    repo = make_project(tmp_path / "project")
    (repo / "fail_train_y").write_text("2")

    state = sepo_pipeline(str(repo), retries=1, retry_backoff_seconds=0, jobs=2, return_state=True)

    assert state.is_failed() and "train@y" in state.message
    assert sorted(ran(repo)) == ["prepare", "train_x", "train_y"]  # exit 2: one attempt; score never started
    assert stage_changes(repo, "train@x") == {}  # the stage beside it ended and was committed
    rows = {r["stage"]: (r["status"], r["attempts"]) for r in table("sepo-pipeline-stages")}
    assert rows == {"prepare": ("ran", 1), "train@x": ("ran", 1), "train@y": ("failed", 1)}


def test_the_pipeline_checks_params_before_running_any_stage(tmp_path):
    repo = make_project(tmp_path / "project", orchestration={"stage_retries": -1})

    with pytest.raises(ConfigError, match=r"orchestration\.stage_retries"):
        sepo_pipeline(str(repo))
    assert ran(repo) == []


def test_dask_fanout_on_two_workers_equals_the_single_process_evaluation(dask_cluster):
    params = load_params(ROOT / "params.yaml")
    shards = [EvaluationShard("scripted:TitForTat", "ipd", 2, 0),
              EvaluationShard("scripted:Grim", "ipd", 2, 0),
              EvaluationShard("scripted:NashApprox", "kuhn", 2, 7),
              EvaluationShard("scripted:Fair", "negotiation", 2, 3)]
    runner = dask_task_runner(params.orchestration, address=dask_cluster.scheduler_address)

    on_dask = evaluation_fanout.with_options(task_runner=runner)(params, shards)

    single_process = merge_results(shards, [evaluate_shard_here(params, shard) for shard in shards])
    assert on_dask == single_process
    assert list(on_dask) == ["scripted:TitForTat", "scripted:Grim", "scripted:NashApprox", "scripted:Fair"]
    assert on_dask["scripted:TitForTat"]["ipd"]["metrics"]["pay"]["value"] > 0
    assert len(dask_cluster.workers) == 2


def test_the_dask_scheduler_comes_from_the_argument_then_the_environment_then_params(monkeypatch):
    settings = load_params(ROOT / "params.yaml").orchestration.model_copy(update={"dask_address": "tcp://params:1"})
    assert dask_task_runner(settings).address == "tcp://params:1"
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://environment:2")
    assert dask_task_runner(settings).address == "tcp://environment:2"
    assert dask_task_runner(settings, address="tcp://argument:3").address == "tcp://argument:3"
    monkeypatch.delenv(DASK_ADDRESS_ENV)
    local = dask_task_runner(settings.model_copy(update={"dask_address": None, "dask_workers": 3}))
    assert local.address is None and local.cluster_kwargs["n_workers"] == 3


def test_scheduled_evaluation_survives_a_failed_pull_and_reports_what_it_skipped(tmp_path, dask_cluster):
    evaluation = [{"policy": "scripted:TitForTat", "games": ["ipd"]},
                  {"policy": "model:data/models/missing", "games": ["ipd", "kuhn"]}]
    repo = make_project(tmp_path / "project", pipeline={"stages": {}},
                        orchestration={"evaluation": evaluation})
    (repo / "released.txt").write_text("released data")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "released.txt"], cwd=repo, check=True)
    # released (tracked by DVC) but never pulled here, and no remote to pull it from
    subprocess.run(["rm", "-rf", ".dvc/cache", "released.txt"], cwd=repo, check=True)

    report = scheduled_evaluation(str(repo), dask_address=dask_cluster.scheduler_address, episodes=2,
                                  out="results/evaluation.json")

    assert "dvc pull could not fetch everything (no DVC remote is configured" in report["pull"]
    assert "evaluating what the workspace holds" in report["pull"]
    from prefect.client.orchestration import get_client  # the pull task itself ended Failed

    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_task_runs() if r.name.startswith("pull_released_data")]
    assert runs and runs[-1].state.is_failed()
    assert list(report["skipped"]) == ["model:data/models/missing"]
    params = load_params(repo / "params.yaml")
    assert report["results"] == merge_results(
        [EvaluationShard("scripted:TitForTat", "ipd", 2, params.eval.seed)],
        [evaluate_shard_here(params, EvaluationShard("scripted:TitForTat", "ipd", 2, params.eval.seed))])
    assert json.loads((repo / "results/evaluation.json").read_text())["skipped"] == report["skipped"]
    markdown = Artifact.get("scheduled-evaluation").data
    assert "## ipd" in markdown and "`scripted:TitForTat`" in markdown
    assert "model folder not found" in markdown


def write_params(repo: Path, orchestration: dict) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["orchestration"].update(orchestration)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return repo


def test_scheduled_evaluation_fails_when_nothing_can_be_evaluated(tmp_path):
    repo = write_params(tmp_path, {"evaluation": [{"policy": "model:data/models/missing", "games": ["ipd"]}]})

    with pytest.raises(ConfigError, match="nothing to evaluate: model:data/models/missing"):
        scheduled_evaluation(str(repo), pull=False)


def test_a_sweep_with_a_bad_value_or_key_fails_before_queueing_anything(tmp_path):
    # not even a DVC project: had the sweep called DVC first, it would fail with a DVC error instead
    repo = write_params(tmp_path, {})

    with pytest.raises(ConfigError, match=r"\{'eval.seed': '-1'\}: eval.seed: Input should be greater than"):
        experiment_sweep({"eval.seed": ["0", "-1"]}, str(repo))
    with pytest.raises(ConfigError, match=r"nosuch\.key: no such section 'nosuch'"):
        experiment_sweep({"nosuch.key": ["1"]}, str(repo))


@pytest.mark.slow
def test_a_sweep_queues_one_experiment_per_combination_and_compares_them(tmp_path):
    repo = make_project(tmp_path / "project")

    rows = experiment_sweep({"eval.seed": ["1", "2"]}, str(repo), name_prefix="seeds")

    by_name = {row["experiment"]: row for row in rows}
    assert [r["status"] for r in rows] == ["done"] * 3
    assert (by_name["seeds-1"]["eval.seed"], by_name["seeds-1"]["metrics.json:score"]) == (1, 1.5)
    assert (by_name["seeds-2"]["eval.seed"], by_name["seeds-2"]["metrics.json:score"]) == (2, 2.5)
    assert table("experiment-sweep") == json.loads(json.dumps(rows))
    assert ran(repo) == []  # experiments ran in DVC's temporary workspaces, not in the user's


def test_each_flow_explains_how_to_run_it(capsys):
    from pipelines.experiment_sweep import main as sweep_main
    from pipelines.scheduled_evaluation import main as evaluation_main
    from pipelines.serve import main as serve_main

    for main, expected in ((sepo_pipeline_main, "--retries"), (sweep_main, "--set"),
                           (evaluation_main, "--dask-address"), (serve_main, "prefect server start")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        assert expected in capsys.readouterr().out


def test_the_comparison_marks_experiments_without_results_as_failed():
    shown = [
        {"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
        {"rev": "05f4bee6007f", "name": "main", "error": None,
         "data": {"params": {"params.yaml": {"data": {"eval": {"seed": 0}}}},
                  "metrics": {"metrics.json": {"data": {"score": 0.5}}}},
         "experiments": [{"revs": [{"rev": "095adaa83055", "name": "grid-1", "error": None,
                                    "data": {"params": {"params.yaml": {"data": {"eval": {"seed": 1}}}},
                                             "metrics": {"metrics.json": {"data": {"score": 1.5}}}}}]}]},
    ]

    rows = comparison_rows(shown, ["grid-1", "grid-2"], ["eval.seed"])

    assert rows == [
        {"experiment": "baseline (main)", "rev": "05f4bee", "status": "done", "eval.seed": 0,
         "metrics.json:score": 0.5},
        {"experiment": "grid-1", "rev": "095adaa", "status": "done", "eval.seed": 1,
         "metrics.json:score": 1.5},
        {"experiment": "grid-2", "rev": "", "status": "failed", "eval.seed": None},
    ]


def test_a_redrawn_progress_bar_reaches_the_log_once_per_period_and_every_line_always():
    import io

    from pipelines.dvc_commands import output_lines

    output = b"loading\n" + b"".join(f"step {i}/9\r".encode() for i in range(10)) + b"saved\r\nbye"
    stream = io.BufferedReader(io.BytesIO(output), buffer_size=7)  # lines split across reads
    redraws = iter(range(0, 1000, 10))  # each redraw comes 10 s after the one before
    lines = list(output_lines(stream, redraw_every_s=30, clock=lambda: next(redraws)))
    assert lines == ["loading", "step 0/9", "step 3/9", "step 6/9", "step 9/9", "saved", "bye"]
