"""End to end: a real Prefect server, the served scheduled evaluation, a scheduled run that completes.

Schedules only fire on a real server, so this starts ``prefect server start``
on 127.0.0.1 with its own PREFECT_HOME, serves the deployments with a
5-second interval, and watches through the Prefect client until a scheduled
run of ``scheduled-evaluation`` is Completed.  Every process it started, and
every process those started, is stopped with bounded waits at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import StateType

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 90
FIRST_RUN_TIMEOUT_S = 150


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _stop(process: subprocess.Popen, first_signal: signal.Signals, grace_s: float) -> list[psutil.Process]:
    """Signal the process group, wait ``grace_s``, then kill it; returns the processes it had spawned."""
    try:
        spawned = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        spawned = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first_signal)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    return spawned


def _default_sigint() -> None:
    """Undo an inherited "ignore SIGINT" (a shell's background jobs have it), or Ctrl-C could not reach serve.

    Python installs its KeyboardInterrupt handler only when SIGINT is not
    ignored at start-up, and an ignored signal survives exec.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def _started(command: list[str], log: Path, env: dict[str, str], first_signal: signal.Signals,
             grace_s: float) -> Iterator[subprocess.Popen]:
    """A process in its own session (so its group can be signalled), stopped on exit with no orphans."""
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint)
    try:
        yield process
    finally:
        spawned = _stop(process, first_signal, grace_s)
        for child in spawned:  # children that left the group (new sessions) are still ours to end
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        _, alive = psutil.wait_procs(spawned, timeout=10)
        assert not alive, f"processes left behind by {command[:4]}: {alive}"


def _project(path: Path) -> Path:
    """A DVC project whose evaluation is one scripted policy, one episode per opponent."""
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["eval"].update(episodes=1, bootstrap_samples=50)
    raw["orchestration"].update(evaluation=[{"policy": "scripted:TitForTat", "games": ["ipd"]}],
                                dask_workers=1)  # the local-cluster path, at half the start-up cost
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _wait_for_health(api_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{_tail(log)}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(1)
    pytest.fail(f"prefect server not healthy after {SERVER_START_TIMEOUT_S} s:\n{_tail(log)}")


@pytest.mark.slow
def test_a_served_scheduled_evaluation_completes_on_a_real_server(tmp_path):
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "SEPO_DASK"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api_url,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_RUNNER_POLL_FREQUENCY="2",
               DVC_NO_ANALYTICS="1", PYTHONPATH=str(ROOT))
    project = _project(tmp_path / "project")
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    server_command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                      "--port", str(port), "--no-ui"]
    serve_command = [sys.executable, "-m", "pipelines.serve", "--repo", str(project), "--interval", "5"]

    with _started(server_command, server_log, env, signal.SIGTERM, grace_s=15) as server:
        _wait_for_health(api_url, server, server_log)
        with SyncPrefectClient(api_url) as client:
            # SIGINT is Ctrl-C: serve shuts down cleanly and pauses the schedule it served
            with _started(serve_command, serve_log, env, signal.SIGINT, grace_s=30) as serve:
                runs = []
                deadline = time.monotonic() + FIRST_RUN_TIMEOUT_S
                while time.monotonic() < deadline:
                    assert serve.poll() is None, f"serve exited:\n{_tail(serve_log)}"
                    runs = client.read_flow_runs(
                        flow_filter=FlowFilter(name=FlowFilterName(any_=["scheduled-evaluation"])))
                    states = {run.state_type for run in runs}
                    assert not states & {StateType.FAILED, StateType.CRASHED}, _tail(serve_log)
                    if StateType.COMPLETED in states:
                        break
                    time.sleep(2)
                else:
                    pytest.fail(f"no Completed scheduled run in {FIRST_RUN_TIMEOUT_S} s:\n{_tail(serve_log)}")

            completed = next(run for run in runs if run.state_type == StateType.COMPLETED)
            assert completed.auto_scheduled  # started by the schedule, not by hand
            deployment = client.read_deployment(completed.deployment_id)
            assert deployment.name == "scheduled"
            assert deployment.paused  # serve paused its schedule on the way out
