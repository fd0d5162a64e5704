"""The report in headless Chromium: no console messages, a screenshot, escaped dataset text.

Needs /usr/bin/chromium (Debian package 'chromium'; .ci/run installs it). The control page
proves the console capture sees errors, so a quiet report means a clean one.
"""

import json
import shutil
import subprocess

import pytest

from layergrad.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")]


def open_in_chromium(page, screenshot, profile):
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}",
            "--window-size=1280,2400", page.as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return [line for line in out.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_capture_sees_errors(tmp_path):
    page = tmp_path / "control.html"
    page.write_text("<html><body>x<script>console.error('control-error'); missingFunction();</script></body></html>")
    messages = open_in_chromium(page, tmp_path / "control.png", tmp_path / "profile")
    assert any("control-error" in m for m in messages) and any("Uncaught" in m for m in messages)


def test_report_opens_without_console_errors(tmp_path):
    rows = [{"instruction": f"<script>console.error('injected {i}')</script> What is {i}+1?", "output": str(i + 1)}
            for i in range(6)]
    (tmp_path / "x.json").write_text(json.dumps(rows))
    run = tmp_path / "run"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--data", f"x={tmp_path / 'x.json'}",
                 "--data", "y=builtin:arith/none?n=6", "--out", str(run)]) == 0
    assert main(["analyze", str(run), "--out", str(tmp_path / "a"), "--bootstrap", "50", "--metrics",
                 "nuclear_norm", "--formats", "png", "-q"]) == 0
    shot = tmp_path / "report.png"
    messages = open_in_chromium(tmp_path / "a" / "report.html", shot, tmp_path / "profile")
    assert messages == []  # the injected <script> did not run: it shows as text
    assert shot.stat().st_size > 20_000
