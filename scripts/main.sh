#!/usr/bin/env bash
# The main job of the README: install, then run the whole pipeline on the tiny CPU profile.
# `dvc repro` regenerates the SFT data (byte-identical to the released copy), builds and
# trains the tiny model, runs SEPO-GRPO per domain, the ablation, every evaluation and the
# report; stages whose inputs did not change are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
dvc repro "$@"
echo "report: reports/results.md (and reports/results.html); dvc metrics show / dvc plots show"
