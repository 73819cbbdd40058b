"""Progress of a long loop: a tqdm bar on a terminal, a log line every N seconds elsewhere.

A tqdm bar redraws itself with carriage returns, which a Prefect run log or a
CI log shows as one endless line, or not at all until the end.  Off a
terminal, :func:`progress` therefore prints a plain line (count, share,
rate, ETA) at most every ``every_s`` seconds and once at the end, so those
logs show the loop is alive and how long it has left.

    with progress(total=1200, desc="evaluate ipd", unit="decision") as advance:
        play_episodes(specs, policy, on_step=advance)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

DEFAULT_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class LogProgress:
    """The off-terminal counterpart of a tqdm bar: ``update(n)`` logs at most every ``every_s`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float, stream: TextIO,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.every_s, self.stream, self.clock = \
            total, desc, unit, every_s, stream, clock
        self.n = 0
        self.start = self.last = clock()

    def _rate(self, rate: float) -> str:
        """Units per second, or seconds per unit below one a second (an ablation arm takes minutes), as tqdm."""
        return f"{1 / rate:.1f} s/{self.unit}" if 0 < rate < 1 else f"{rate:.1f} {self.unit}/s"

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if self.total:
            left = max(self.total - self.n, 0) / rate if rate > 0 else float("nan")
            eta = _duration(left) if left == left else "?"
            return (f"{self.desc}: {self.n}/{self.total} {self.unit}s ({100 * self.n / self.total:.0f}%), "
                    f"{self._rate(rate)}, elapsed {_duration(elapsed)}, ETA {eta}")
        return f"{self.desc}: {self.n} {self.unit}s, {self._rate(rate)}, elapsed {_duration(elapsed)}"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        print(self.line() + " - done", file=self.stream, flush=True)


class Progress:
    """``update(n)`` drives a tqdm bar (total and ETA) on a terminal, else a :class:`LogProgress`.

    ``total`` may be an estimate: :meth:`close` sets it to what was actually
    done, so a finished loop closes at 100%.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "step", every_s: float = DEFAULT_EVERY_S,
                 stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self._bar: tqdm | LogProgress = (
            tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True) if stream.isatty()
            else LogProgress(total, desc, unit, every_s, stream))

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.total = self._bar.n
        if isinstance(self._bar, tqdm):
            self._bar.refresh()
        self._bar.close()


@contextmanager
def progress(total: int | None, desc: str, unit: str = "step", every_s: float = DEFAULT_EVERY_S,
             stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` of a :class:`Progress`; it closes at 100% when the block ends normally."""
    bar = Progress(total, desc, unit, every_s, stream)
    yield bar.update
    bar.close()
