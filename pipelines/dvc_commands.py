"""DVC as the flows see it: the stage graph, a stage's status, and ``dvc`` commands.

The stage list and the status come from DVC's Python API, in process: they
are read-only and cost a few milliseconds, where each ``dvc`` command costs
about two seconds of start-up.  Everything that changes the workspace
(``repro``, ``pull``, ``exp run``) runs as the ``dvc`` command line in a
subprocess, exactly as a user would type it, so a flow and a terminal always
do the same thing.

(The module is not called ``dvc.py``: Prefect may put this folder on
``sys.path`` when it loads a flow from its file, and it would shadow DVC.)
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PROJECT_FILE = "dvc.yaml"
TAIL_LINES = 20  # lines of a failed command quoted in its error
PROGRESS_LOG_SECONDS = 30.0  # a redrawn progress bar is logged at most this often


class DvcCommandError(RuntimeError):
    """A ``dvc`` command exited non-zero; the message quotes its last lines."""


@dataclass(frozen=True)
class CommandOutcome:
    """Exit status and the last lines of a ``dvc`` command's merged output."""

    returncode: int
    tail: list[str]

    @property
    def error_line(self) -> str:
        """DVC's own ``ERROR:`` line when there is one, else the last line printed."""
        errors = [line for line in self.tail if line.startswith("ERROR")]
        return (errors or self.tail or ["(no output)"])[-1]


def _command(*args: str) -> list[str]:
    # the interpreter running the flow, so the flow's environment is DVC's environment
    return [sys.executable, "-m", "dvc", *args]


def run_streamed(repo: Path, *args: str,
                 on_line: Callable[[str], None] = lambda line: None) -> CommandOutcome:
    """Run ``dvc ARGS`` in ``repo``, passing each output line to ``on_line`` as it comes.

    Long stages print progress for minutes; streaming makes it visible in
    the flow's logs while it happens rather than at the end.
    """
    return _streamed(_command(*args), repo, on_line)


def _streamed(command: list[str] | str, repo: Path, on_line: Callable[[str], None]) -> CommandOutcome:
    """Run ``command`` (a string: through the shell) in ``repo``; merged output line by line to ``on_line``."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, shell=isinstance(command, str), cwd=repo, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        for line in output_lines(process.stdout):
            tail.append(line)
            on_line(line)
    return CommandOutcome(process.returncode, list(tail))


def output_lines(stream: IO[bytes], redraw_every_s: float = PROGRESS_LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[str]:
    """A command's output as log lines: every line, and a redrawn progress bar once per ``redraw_every_s``.

    A bar (tqdm's, for one: the Trainer's in the ``sft`` stage) redraws itself
    with a carriage return many times a second; read as lines, one SFT run
    alone would fill a flow's log with thousands of them.
    """
    last_redraw = -math.inf
    pending = b""
    for chunk in iter(lambda: stream.read1(65536), b""):
        pending += chunk
        *segments, pending = re.split(rb"(\r\n|\n|\r)", pending)
        for text, end in zip(segments[::2], segments[1::2], strict=True):
            line = text.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            if end == b"\r":
                now = clock()
                if now - last_redraw < redraw_every_s:
                    continue
                last_redraw = now
            yield line
    if pending.strip():
        yield pending.decode("utf-8", errors="replace").rstrip()


def run_json(repo: Path, *args: str) -> Any:
    """Run ``dvc ARGS --json`` in ``repo`` and parse its standard output."""
    result = subprocess.run(_command(*args, "--json"), cwd=repo, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()][-TAIL_LINES:]
        outcome = CommandOutcome(result.returncode, lines)
        raise DvcCommandError(f"`dvc {' '.join(args)}` failed (exit {result.returncode}): "
                              f"{outcome.error_line}")
    return json.loads(result.stdout or "null")


def pipeline_stages(repo: Path) -> list[str]:
    """Every pipeline stage of ``repo`` (foreach items expanded: ``sepo@ipd``), dependencies first.

    Names are as ``dvc repro`` takes them in the project's root (``train``,
    or ``sub/dvc.yaml:train`` for a stage of another ``dvc.yaml``).  Among
    stages that do not depend on each other, the order of ``dvc.yaml`` is
    kept, so the order is stable from run to run.
    """
    return list(pipeline_graph(repo))


def pipeline_graph(repo: Path) -> dict[str, list[str]]:
    """Each pipeline stage of ``repo`` with the stages whose outputs it uses, in ``pipeline_stages`` order."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    def name(stage) -> str:
        return stage.name if stage.path_in_repo == PROJECT_FILE else f"{stage.path_in_repo}:{stage.name}"

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # an edge from each stage to the stages it depends on
        stages = dvc_repo.index.stages
        position = {stage: i for i, stage in enumerate(stages)}
        ordered = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=position.__getitem__)
        return {name(stage): [name(up) for up in graph.successors(stage) if isinstance(up, PipelineStage)]
                for stage in ordered if isinstance(stage, PipelineStage)}


def prepare_stage_run(repo: Path, stage: str) -> list[str]:
    """Do what ``dvc repro`` does before a stage's command, and return its shell command(s).

    That is: remove the stage's outputs, except ``persist`` ones (DVC's own
    ``Stage.remove_outs``, under the repository lock), so a folder output
    holds only what this run writes.  Commands come resolved (``${item}``).
    """
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo, dvc_repo.lock:
        (resolved,) = dvc_repo.stage.collect(_stage_target(repo, stage))
        resolved.remove_outs(ignore_remove=False, force=False)
        return [resolved.cmd] if isinstance(resolved.cmd, str) else list(resolved.cmd)


def run_shell_streamed(repo: Path, command: str,
                       on_line: Callable[[str], None] = lambda line: None) -> CommandOutcome:
    """Run a stage's shell ``command`` in ``repo`` as DVC runs it (``sh -c``), streaming its lines."""
    outcome = _streamed(command, repo, on_line)
    if outcome.returncode == 0:
        return outcome
    # worded as `dvc repro` words it, so a failure reads the same in either path
    return CommandOutcome(outcome.returncode, [*outcome.tail, f"ERROR: failed to reproduce: the command "
                                                              f"exited with {outcome.returncode}"])


def stage_changes(repo: Path, stage: str) -> dict[str, Any]:
    """What ``dvc status STAGE`` reports (without its upstream stages): empty when up to date."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return dvc_repo.status(targets=[_stage_target(repo, stage)])


def _stage_target(repo: Path, stage: str) -> str:
    """``stage`` as an absolute DVC target: DVC resolves a bare stage name against the current folder."""
    file, _, name = stage.rpartition(":")
    return f"{repo.resolve() / (file or PROJECT_FILE)}:{name}"


def flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) pairs of nested mappings and lists."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, list) and any(isinstance(item, Mapping | list) for item in tree):
        for index, value in enumerate(tree):
            yield from flatten(value, f"{prefix}.{index}")
    else:
        yield prefix, tree


def metrics_rows(repo: Path) -> list[dict[str, Any]]:
    """The workspace's ``dvc metrics show --json`` as rows of (file, metric, value)."""
    shown = run_json(repo, "metrics", "show") or {}
    rows: list[dict[str, Any]] = []
    for file, content in shown.get("", {}).get("data", {}).items():
        if "error" in content:
            rows.append({"file": file, "metric": "(unreadable)", "value": str(content["error"])})
            continue
        rows.extend({"file": file, "metric": key, "value": value} for key, value in flatten(content["data"]))
    return rows
