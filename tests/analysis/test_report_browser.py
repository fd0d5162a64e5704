"""The report in headless Chromium: no console messages, a screenshot, escaped dataset text.

Needs /usr/bin/chromium (Debian package 'chromium'; .ci/run installs it). The control page
proves the console capture sees errors, so a quiet report means a clean one.
"""

import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]


def open_in_chromium(page, screenshot, profile, size="1280,2400"):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}",
            f"--window-size={size}", page.as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return [line for line in out.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_capture_sees_errors(tmp_path):
    page = tmp_path / "control.html"
    page.write_text("<html><body>x<script>console.error('control-error'); missingFunction();</script></body></html>")
    messages = open_in_chromium(page, tmp_path / "control.png", tmp_path / "profile")
    assert any("control-error" in m for m in messages) and any("Uncaught" in m for m in messages)


def test_report_opens_without_console_errors(script_report, tmp_path):
    shot = tmp_path / "report.png"
    messages = open_in_chromium(script_report, shot, tmp_path / "profile")
    assert messages == []  # the prompts' <script> did not run: it shows as text
    assert shot.stat().st_size > 20_000


FIRST_SCREEN = """<!doctype html><html><body style="margin:0">
<iframe id="r" src="{src}" style="width:1400px;height:900px;border:0"></iframe>
<script>
document.getElementById("r").onload = function () {{
  var doc = this.contentDocument, table = doc.querySelector("table.claims"), fig = doc.querySelector("figure img");
  var out = {{claims_text: table ? table.innerText : "", claims_top: table ? table.getBoundingClientRect().top : -1,
             figure_top: fig ? fig.getBoundingClientRect().top : -1, verdicts: doc.querySelectorAll("td.verdict").length}};
  var pre = document.createElement("pre"); pre.id = "result"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}};
</script></body></html>"""


def first_screen(report, tmp_path) -> dict:
    """Where the claims table and the first figure sit in a 1400x900 viewport (measured in Chromium)."""
    import html
    import json
    import re

    page = tmp_path / "first_screen.html"
    page.write_text(FIRST_SCREEN.format(src=report.as_uri()))
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--allow-file-access-from-files",
            f"--user-data-dir={tmp_path / 'profile2'}", "--virtual-time-budget=10000", "--window-size=1400,900",
            "--dump-dom", page.as_uri()]
    dom = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def verdict_pixels(screenshot) -> int:
    """Pixels of the verdict cells' colours (holds / fails / inconclusive / not-applicable / confounded) in a
    screenshot."""
    from PIL import Image

    colours = {(0xDF, 0xF3, 0xE4), (0xFD, 0xE2, 0xE1), (0xFD, 0xF3, 0xD8), (0xEE, 0xEE, 0xEE), (0xE8, 0xE4, 0xF3)}
    image = Image.open(screenshot).convert("RGB")
    return sum(n for n, colour in image.getcolors(1 << 20) if colour in colours)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """`layergrad demo` (3 problems per condition) on a tiny random model: its report (`make demo`
    runs it on the real model)."""
    from layergrad.cli import main

    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--limit", "3", "--model", "tiny-random-llama", "--out", str(out), "-q"]) == 0
    return out / "analysis" / "report.html"


def test_demo_report_leads_with_the_claims(demo_report, tmp_path):
    assert demo_report.stat().st_size <= 1.5e6
    screen = first_screen(demo_report, tmp_path)
    assert "Early-layer nuclear norm: None > Detailed CoT" in screen["claims_text"] and screen["verdicts"] >= 4
    assert 0 < screen["claims_top"] < 300 and 0 < screen["figure_top"] < 900  # both in the first screen
    shot = tmp_path / "first.png"
    assert open_in_chromium(demo_report, shot, tmp_path / "profile", size="1400,900") == []  # no console messages
    assert verdict_pixels(shot) > 2000  # the coloured verdict cells are on the first screen
