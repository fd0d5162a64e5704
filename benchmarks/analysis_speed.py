"""How long ``analyze`` takes on a demo run and ``reproduce`` on a finished reproduction, this tree against earlier
commits, alternating fresh processes in one session.

    python benchmarks/analysis_speed.py --demo demo-run --reproduce runs/repro-smollm2 [--refs 35fe246] [--rounds 3]

Per round and per tree (each REF checked out into a temporary git worktree, this tree last), in a fresh process
with that tree first on PYTHONPATH:

- ``statistics``: ``layergrad.analyze(DEMO)`` in Python, nothing written — every table, the claims with the
  tree's default draws, the pooled evidence (what a notebook waits for);
- ``analyze``: the command ``layergrad analyze DEMO --out TMP`` — the same plus its figures and report;
- ``reproduce``: ``layergrad reproduce --config REPRO/reproduce.yaml`` on a copy of the finished reproduction —
  nothing to compute, so the analysis of every cell, the claims of the whole grid and its report.

Printed: the CPU, each tree's median seconds and the ratio of each earlier tree to this one. ``--reproduce-rounds``
bounds the slow earlier trees' reproductions (the old analysis of 1,680 samples took 13-15 minutes).
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"{platform.processor()}, {os.cpu_count()} cores"


def timed(command: list[str], tree: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "LAYERGRAD_PLAN_FILE": str(cwd / "plan.json")}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed in {tree}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def trees(refs: list[str], scratch: Path) -> dict[str, Path]:
    out = {}
    for ref in refs:
        path = scratch / f"tree-{ref}"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                       capture_output=True)
        out[ref] = path
    out["this tree"] = ROOT
    return out


def measurements(args, tree: Path, scratch: Path, round_: int) -> dict[str, float]:
    python = sys.executable
    got = {}
    if args.demo:
        demo = Path(args.demo).resolve()
        got["statistics"] = timed([python, "-c", f"import layergrad; layergrad.analyze({str(demo)!r}, log=lambda *a: None)"],
                                  tree, scratch)
        out = scratch / f"analysis-{round_}"
        got["analyze"] = timed([python, "-m", "layergrad", "analyze", str(demo), "--out", str(out), "-q"], tree, scratch)
        shutil.rmtree(out, ignore_errors=True)
    if args.reproduce and (tree == ROOT or round_ < args.reproduce_rounds):
        copy = scratch / f"repro-{round_}"
        shutil.copytree(Path(args.reproduce).resolve(), copy, ignore=shutil.ignore_patterns("analysis", "figures"))
        config = copy / "reproduce.yaml"
        text = config.read_text().splitlines()
        config.write_text("\n".join(f"out: {copy}" if line.startswith("out:") else line for line in text) + "\n")
        got["reproduce"] = timed([python, "-m", "layergrad", "reproduce", "--config", str(config), "-q"], tree, scratch)
        shutil.rmtree(copy, ignore_errors=True)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", help="a finished demo run (layergrad demo --out DIR)")
    parser.add_argument("--reproduce", help="a finished reproduction's output folder (with reproduce.yaml and run/)")
    parser.add_argument("--refs", nargs="*", default=["35fe246"], help="earlier commits to time against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reproduce-rounds", type=int, default=1, help="rounds of the earlier trees' reproductions")
    args = parser.parse_args()
    print(f"CPU: {cpu()}; python {platform.python_version()}")
    scratch = Path(tempfile.mkdtemp(prefix="layergrad-analysis-speed-"))
    found: dict[tuple[str, str], list[float]] = {}
    worktrees = trees(args.refs, scratch)
    try:
        for round_ in range(args.rounds):
            for name, tree in worktrees.items():
                for what, seconds in measurements(args, tree, scratch, round_).items():
                    found.setdefault((name, what), []).append(seconds)
                    print(f"round {round_ + 1} {name:>10} {what:>10}: {seconds:7.1f} s", flush=True)
    finally:
        for name, tree in worktrees.items():
            if tree != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    print("\nmedian seconds (ratio to this tree):")
    for what in ("statistics", "analyze", "reproduce"):
        mine = found.get(("this tree", what))
        if not mine:
            continue
        line = [f"{what:>10}: this tree {statistics.median(mine):.1f} s"]
        for ref in args.refs:
            theirs = found.get((ref, what))
            if theirs:
                line.append(f"{ref} {statistics.median(theirs):.1f} s ({statistics.median(theirs) / statistics.median(mine):.1f}x)")
        print("; ".join(line))


if __name__ == "__main__":
    main()
