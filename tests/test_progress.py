"""Progress off a terminal: a plain log line every N seconds, with count, share and ETA."""

from __future__ import annotations

import io

from sepo.progress import LogProgress, progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_come_every_n_seconds_with_an_eta():
    stream, clock = io.StringIO(), Clock()
    log = LogProgress(total=100, desc="evaluate ipd", unit="decision", every_s=30, stream=stream, clock=clock)
    for _ in range(10):  # 10 decisions per 10 s: only the updates at 30 s and 60 s log
        clock.now += 10
        log.update(10)
    lines = stream.getvalue().splitlines()
    assert lines == ["evaluate ipd: 30/100 decisions (30%), 1.0 decision/s, elapsed 00:30, ETA 01:10",
                     "evaluate ipd: 60/100 decisions (60%), 1.0 decision/s, elapsed 01:00, ETA 00:40",
                     "evaluate ipd: 90/100 decisions (90%), 1.0 decision/s, elapsed 01:30, ETA 00:10"]


def test_an_estimated_total_closes_at_what_was_done():
    stream = io.StringIO()  # not a terminal: no tqdm bar, no carriage returns
    with progress(total=50, desc="play", unit="decision", stream=stream) as advance:
        advance(30)
        advance(12)
    out = stream.getvalue()
    assert "\r" not in out
    assert out.splitlines()[-1].startswith("play: 42/42 decisions (100%)") and out.rstrip().endswith("- done")
