#!/usr/bin/env bash
# The main job of the README: install, then run the pipeline on the tiny CPU profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
mkdir -p results
sepo evaluate --policy scripted:TitForTat --game ipd --out results/scripted_tft_ipd.json
