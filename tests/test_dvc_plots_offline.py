"""`dvc plots show` draws every declared plot offline, in headless Chromium.

The page comes from a plain `dvc plots show` over the committed plot data, so
it uses the template set in ``.dvc/config`` (``plots.html_template``): Vega,
Vega-Lite and vega-embed inlined, nothing from a CDN.  Chromium runs with a
proxy that refuses every connection, so a chart that needed the network
would stay blank.  A probe appended to a copy of the page waits for each
vega-embed view and counts the painted pixels of its canvas; the DOM
Chromium dumps carries the result back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from sepo import plots_page
from tests.model_fixtures import ROOT
from tests.test_report_browser import headless

PROBE = """
<script>
// Each plot div holds an inline vegaEmbed call; vega-embed adds a canvas (the
// default renderer) once the view has run.  Count the painted pixels.
function probe() {
  const charts = [...document.querySelectorAll('body > div[id]')].map(div => {
    const image = div.querySelector('img');
    if (image) return {id: div.id, kind: 'image', width: image.naturalWidth, height: image.naturalHeight,
                       ink: image.naturalWidth * image.naturalHeight};
    const canvas = div.querySelector('canvas');
    const svg = div.querySelector('svg.marks');
    if (canvas && canvas.width && canvas.height) {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let ink = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) ink++;
      return {id: div.id, kind: 'canvas', width: canvas.width, height: canvas.height, ink};
    }
    if (svg) return {id: div.id, kind: 'svg', width: svg.width.baseVal.value, height: svg.height.baseVal.value,
                     ink: svg.querySelectorAll('path, rect, line').length};
    return {id: div.id, kind: 'blank', width: 0, height: 0, ink: 0};
  });
  document.body.setAttribute('data-charts', JSON.stringify({charts, errors: window.plotErrors}));
}
window.addEventListener('load', () => setTimeout(probe, 3000));
</script>
"""
# Collects script errors (e.g. `vegaEmbed is not defined` when the libraries failed to load).
ERRORS = "<script>window.plotErrors = []; window.addEventListener('error', e => window.plotErrors.push(e.message));"\
         "</script>"


def declared_plots() -> set[str]:
    """The div ids dvc-render gives to every plot of dvc.yaml: top-level ids and stage plot files.

    Stage plots are read from DVC's own resolved stages, so ``foreach`` / ``matrix`` templates
    (``${item}``, ``${key}``) are expanded exactly as DVC expands them.
    """
    from dvc.repo import Repo

    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    ids = {next(iter(entry)) for entry in pipeline["plots"]}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            for out in stage.outs:
                if not out.plot:
                    continue
                path = ROOT / out.def_path
                files = sorted(path.rglob("*.*")) if path.is_dir() else [path]
                ids.update(str(file.relative_to(ROOT)) for file in files)
    return {re.sub(r"[^a-zA-Z0-9_-]", "_", plot_id) for plot_id in ids}


def dvc_plots_page(out: Path) -> str:
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--out", str(out)], cwd=ROOT,
                   capture_output=True, text=True, check=True)
    return (out / "index.html").read_text()


def test_every_declared_plot_draws_offline_in_headless_chromium(tmp_path):
    page = dvc_plots_page(tmp_path / "plots")
    assert "<script src=" not in page, "the page still loads a script from the network"
    assert 'data-library="vega-embed"' in page, "dvc plots show did not use .dvc/plots/offline.html"
    probed = tmp_path / "plots" / "probed.html"  # beside index.html: the image plots' static/ folder resolves
    head, _, tail = page.rpartition("</body>")  # the last one: vega-embed's code holds the string "</body>" too
    probed.write_text(head.replace("<head>", "<head>" + ERRORS, 1) + PROBE + "</body>" + tail)
    dom = headless("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                   "--virtual-time-budget=20000", "--window-size=1600,1200", "--dump-dom", probed.as_uri()).stdout
    match = re.search(r'data-charts="([^"]*)"', dom)
    assert match, "the probe did not run: Chromium did not load the page"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == [], result["errors"]
    charts = {chart["id"]: chart for chart in result["charts"]}
    missing = declared_plots() - set(charts)
    assert not missing, f"declared in dvc.yaml but not on the page: {sorted(missing)}"
    for chart in charts.values():
        assert chart["kind"] != "blank" and chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["ink"] > 2_000, chart  # axes alone paint fewer pixels than axes with marks


def test_every_declared_plot_names_its_y():
    """No plot falls back to dvc's default y (the last column, e.g. `rollout_time`) or draws a table by `step`."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    entries = [next(iter(entry.items())) for entry in pipeline["plots"]]
    for stage in pipeline["stages"].values():
        entries += [next(iter(entry.items())) for entry in stage.get("do", stage).get("plots", [])]
    for plot_id, props in entries:
        assert props.get("y"), f"{plot_id} declares no y"
        tabular = str(plot_id).endswith(".csv") or any(str(f).endswith(".csv") for f in props["y"])
        if tabular:
            assert props.get("template", "linear") not in {"linear", "simple", "smooth", "scatter"}, plot_id


def test_comparison_plots_split_by_domain_with_error_bars():
    template = json.loads((ROOT / ".dvc" / "plots" / "bars_by_domain_ci.json").read_text())
    assert template["facet"]["row"]["field"] == "game"
    fields = json.dumps(template["spec"]["layer"])
    assert "<DVC_METRIC_X>_ci_low" in fields and "<DVC_METRIC_X>_ci_high" in fields


def test_committed_offline_template_is_the_npm_packages_build():
    """The inlined libraries are the registry packages of scripts/vega/package.json (installed by install.sh)."""
    pinned = json.loads((ROOT / "scripts" / "vega" / "package.json").read_text())["dependencies"]
    assert plots_page.library_versions() == pinned
    assert plots_page.PAGE.read_text(encoding="utf8") == plots_page.build_page(), \
        "rebuild with `python -m sepo.plots_page`"
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"html_template\s*=\s*plots/offline\.html", config)
