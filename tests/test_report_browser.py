"""The committed report renders in a real browser: headless Chromium draws every figure.

The HTML report inlines its figures as SVG and loads nothing from the
network, so it renders offline.  A probe script appended to a copy of the
page measures each figure's box after layout; the DOM Chromium dumps carries
the result back.  A screenshot is kept under ``results/screenshots/`` (a CI
artifact; the path is printed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from tests.model_fixtures import ROOT

REPORT = ROOT / "reports" / "results.html"
PROBE = """
<script>
const figures = [...document.querySelectorAll('figure svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {width: box.width, height: box.height, marks: svg.querySelectorAll('path, rect, line, text').length};
});
document.body.setAttribute('data-figures', JSON.stringify(figures));
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise AssertionError("no Chromium found: scripts/install.sh installs Debian's `chromium`")


def headless(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def test_report_figures_render_in_headless_chromium(tmp_path, capsys):
    html = REPORT.read_text()
    expected = html.count("<figure")
    assert expected >= 3, "the report should inline its comparison, Kuhn and training figures"
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = headless("--dump-dom", page.as_uri()).stdout
    match = re.search(r'data-figures="([^"]*)"', dom)
    assert match, "the probe did not run: Chromium did not load the page"
    figures = json.loads(match.group(1).replace("&quot;", '"'))
    assert len(figures) == expected
    for figure in figures:
        assert figure["width"] > 100 and figure["height"] > 100 and figure["marks"] > 20, figure
    shots = ROOT / "results" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"
    headless(f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri())
    assert shot.stat().st_size > 50_000
    with capsys.disabled():
        print(f"\nreport screenshot (CI artifact): {shot}", file=sys.stderr)

