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


def test_report_opens_without_console_errors(script_report, tmp_path):
    shot = tmp_path / "report.png"
    messages = open_in_chromium(script_report, shot, tmp_path / "profile")
    assert messages == []  # the prompts' <script> did not run: it shows as text
    assert shot.stat().st_size > 20_000
