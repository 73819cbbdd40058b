#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (idempotent).
# torch is pinned first: on these machines `torch==2.13.0` is a local CPU
# wheel, while an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev,dask]"
