#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine (idempotent).
# torch is pinned first: on these machines `torch==2.13.0` is a local CPU
# wheel, while an unpinned torch would pull a multi-GB CUDA build.
# Debian's `chromium` renders the HTML report in a headless test.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev,dask]"
# Vega, Vega-Lite and vega-embed from the npm registry: `python -m sepo.plots_page`
# inlines them into .dvc/plots/offline.html, the offline `dvc plots show` page.
npm ci --prefix scripts/vega --no-audit --no-fund --silent
if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; }
fi
