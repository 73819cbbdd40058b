"""The ablation shows its progress in arms: a tqdm bar on a terminal, a log line with an ETA elsewhere.

Training and evaluating an arm takes minutes, so ``run_arm`` is replaced by a
stub that only records that it ran; the executor, the callbacks and the
progress output are the real ones.
"""

from __future__ import annotations

import functools
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sepo.training.ablation as ablation
from sepo.config import load_params, parse_params
from sepo.progress import progress

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def params():
    raw = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    raw["ablation"]["workers"] = 1
    return parse_params(raw)


def _stub(monkeypatch, stream: io.StringIO, every_s: float = 0.0) -> None:
    def run_arm(params, game, run, model_path, work):
        stream.write(f"ran {game} {ablation.SFT_ARM if run is None else ablation.arm_name(run)}\n")
        return ablation.ArmResult(history=[], evaluation={}, episodes=[])

    monkeypatch.setattr(ablation, "run_arm", run_arm)
    monkeypatch.setattr(ablation, "ablation_table", lambda params, game, arms: list(arms))
    monkeypatch.setattr(ablation, "progress", functools.partial(progress, every_s=every_s, stream=stream))


def _arm_count(params) -> int:
    return sum(ablation.arm_applies(params, game, run)
               for game in params.ablation.games for run in (None, *params.ablation.runs))


def test_one_worker_logs_each_arm_as_it_ends_with_total_and_eta(params, monkeypatch):
    stream = io.StringIO()  # not a terminal
    _stub(monkeypatch, stream)
    table = ablation.run_ablation(params, "unused")
    total = _arm_count(params)
    assert sum(len(arms) for arms in table.values()) == total
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    # a progress line follows every arm, before the next one starts
    assert [line.startswith("ran ") for line in lines[:-1]] == [True, False] * total
    for done, line in enumerate(lines[1:-1:2], start=1):
        assert line.startswith(f"ablation: {done}/{total} arms ({100 * done / total:.0f}%), ")
        assert "ETA " in line and "elapsed " in line
    assert lines[-1].startswith(f"ablation: {total}/{total} arms (100%)") and lines[-1].endswith("- done")


def test_worker_processes_count_arms_from_their_callbacks(params, monkeypatch):
    """In a pool the callbacks run in the executor's thread; the bar closes after the pool, at 100%."""
    stream = io.StringIO()
    _stub(monkeypatch, stream, every_s=3600.0)
    monkeypatch.setattr(ablation, "_executor", lambda params: ThreadPoolExecutor(max_workers=1))
    ablation.run_ablation(params, "unused")
    total = _arm_count(params)
    progress_lines = [line for line in stream.getvalue().splitlines() if line.startswith("ablation:")]
    assert len(progress_lines) == 1 and progress_lines[0].startswith(f"ablation: {total}/{total} arms (100%)")


def test_a_terminal_gets_a_tqdm_bar_with_the_arm_total(params, monkeypatch):
    stream = Terminal()
    _stub(monkeypatch, stream)
    ablation.run_ablation(params, "unused")
    total = _arm_count(params)
    out = stream.getvalue()
    assert "\r" in out and f"{total}/{total}" in out and "arm" in out and "- done" not in out


def test_slow_units_read_as_seconds_per_unit():
    from sepo.progress import LogProgress

    now = [0.0]
    log = LogProgress(total=10, desc="ablation", unit="arm", every_s=60, stream=io.StringIO(), clock=lambda: now[0])
    now[0] = 240.0
    log.update(2)
    assert log.line() == "ablation: 2/10 arms (20%), 120.0 s/arm, elapsed 04:00, ETA 16:00"
