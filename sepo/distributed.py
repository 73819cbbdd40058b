"""Which process of a multi-process launch this is, known before any process group exists.

Stage scripts clear and write their outputs; under ``accelerate launch``
every process runs the script, so only the main one may touch shared files
(a second rank clearing an output folder while the first writes into it
loses work).  ``accelerate launch`` and ``torchrun`` set ``RANK`` for each
process; a plain ``python`` run has none and is the main process.
"""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True for a single-process run and for rank 0 of a distributed launch."""
    return int(os.environ.get("RANK", "0")) == 0
