#!/usr/bin/env bash
# The test command of the README: install, lint, then every test (slow ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
ruff check .
python -m pytest -q "$@"
