"""The documentation as a user meets it: a short README, every command line in README and docs parses
(and pastes safely into a shell), library hygiene, and the built site in a browser without errors."""

import functools
import http.server
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest

from layergrad.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "CONTRIBUTING.md",
         ROOT / "benchmarks" / "README.md"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def command_lines(page: Path) -> list[str]:
    """Every `layergrad ...` example in the page's code blocks (continuations joined, comments cut);
    synopsis lines with [optional] or a|b parts are not examples."""
    lines, block, pending = [], False, ""
    for raw in page.read_text(encoding="utf-8").splitlines():
        if raw.strip().startswith("```"):
            block, pending = not block, ""
            continue
        if not block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        line = re.split(r"\s+#\s", line)[0].strip()
        if re.match(r"^(layergrad |torchrun .*-m layergrad )", line) and not re.search(r"\[|\||\.\.\.", line):
            lines.append(line)
    return lines


EXAMPLES = [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in command_lines(page)]


def parse(argv: list[str]) -> click.Context:
    """Resolve the command of ``argv`` and parse its options and arguments (nothing runs)."""
    command, name = cli, "layergrad"
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), argv[0])
        assert sub is not None, f"no command {argv[0]!r}"
        command, name, argv = sub, f"{name} {argv[0]}", argv[1:]
    return command.make_context(name, list(argv))


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize("page,line", EXAMPLES)
def test_every_command_line_in_readme_and_docs_parses(page, line):
    outside_quotes = re.sub(r"'[^']*'|\"[^\"]*\"", "", line)
    assert not re.search(r"[?&]", outside_quotes), f"{page}: '{line}' needs quotes: ? globs and & backgrounds in a shell"
    argv = shlex.split(line)
    if argv[0] == "torchrun":
        argv = argv[argv.index("layergrad") + 1:]
    else:
        argv = argv[1:]
    parse(argv)


def test_the_old_spellings_still_parse_but_are_hidden():
    parse(["demo", "-n", "3"])
    parse(["data", "styles", "--in", "x.json", "--out-dir", "d"])
    demo = cli.get_command(click.Context(cli), "demo").get_help(click.Context(cli))
    assert "--limit" in demo and " -n " not in demo


@pytest.mark.slow
def test_importing_and_analysing_leaves_matplotlibs_backend_alone(tmp_path):
    code = """
import matplotlib
matplotlib.use("svg")
import layergrad
m = layergrad.load_model("tiny-random-llama")
frame = layergrad.compute(m, {"none": "builtin:arith/none?n=3", "detailed": "builtin:arith/detailed?n=3"})
result = layergrad.analyze(frame, n_boot=20, log=lambda *a: None)
result.figure("headline")
print(matplotlib.get_backend())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "svg"


def test_run_json_names_no_commit_of_a_repository_around_an_installed_package(tmp_path, monkeypatch):
    from layergrad.runs import runner

    commit = runner.git_commit()
    package = Path(runner.__file__).resolve().parents[1]
    assert commit is None or (package.parent / ".git").exists()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="the docs extra is not installed (make docs)")
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_site_builds_strictly_and_opens_without_console_errors(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    site = tmp_path / "site"
    build = subprocess.run([str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for page in ("", "reference/api/", "reference/cli/"):
            args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                    f"--screenshot={tmp_path / 'shot.png'}", "--window-size=1280,1600",
                    f"http://127.0.0.1:{server.server_address[1]}/{page}"]
            out = subprocess.run(args, capture_output=True, text=True, timeout=120)
            messages = [m for m in out.stderr.splitlines() if ":CONSOLE" in m or "Uncaught" in m]
            assert messages == [], (page, messages)
            assert (tmp_path / "shot.png").stat().st_size > 10_000
    finally:
        server.shutdown()
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "Returns" in api and "load_model" in api and "score" in api
    assert "layergrad reproduce" in (site / "reference" / "cli" / "index.html").read_text()


def test_the_reference_pages_name_the_output_columns_the_schema_writes():
    """The run directory's tables in docs/guide/usage.md and the analysis CSVs in docs/guide/analysis.md say
    what the code writes: every column of the schema module, every table of an analysis."""
    import re

    from layergrad.analysis.analyze import TABLES
    from layergrad.schema import IFD_COLUMNS, SAMPLE_COLUMNS, stats_columns

    usage = (ROOT / "docs" / "guide" / "usage.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)\.parquet` \| (.*) \|$", usage, re.M)}
    named = {table: set(re.findall(r"`?(\w+)`?", text)) for table, text in rows.items()}
    assert set(stats_columns()) | {"cosine_next", "cosine_pair", "spectrum"} <= named["stats"]
    assert set(SAMPLE_COLUMNS) | set(IFD_COLUMNS) <= named["samples"]
    analysis = (ROOT / "docs" / "guide" / "analysis.md").read_text()
    assert {f"{t}.csv" for t in TABLES} <= set(re.findall(r"^\| `(\w+\.csv)` \|", analysis, re.M))


@pytest.mark.integration
def test_the_readmes_python_example_runs_as_written_offline(tmp_path, monkeypatch):
    """The README's Python block, extracted and run verbatim in a fresh folder with the hub closed: built-in data,
    the model loaded once and reused by score, every call's result what the next reads."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert set(namespace["result"].claims.claim) >= {"H1", "H2"}
    assert (tmp_path / "runs" / "arith-analysis" / "report.html").exists()
    assert len(namespace["scored"]) == 6 and (tmp_path / "runs" / "arith-scored" / "top-0.5-effective_rank.jsonl").exists()


def test_the_usage_guide_names_every_model_alias():
    """The models and adapters the code knows, each named in the usage guide (a new alias cannot go undocumented)."""
    from layergrad.models import ALIASES, TINY
    from layergrad.tiny import ADAPTERS

    usage = (ROOT / "docs" / "guide" / "usage.md").read_text()
    missing = [name for name in [*ALIASES, *TINY, *ADAPTERS] if f"`{name}`" not in usage]
    assert not missing, f"docs/guide/usage.md does not name {missing}"
