"""layergrad's per-sample time against earlier commits, in one session, alternating fresh processes.

    python benchmarks/against_commit.py REF [REF ...] [--n 10] [--rounds 3] [--styles none detailed]

Every round runs each REF, then this tree, each in a fresh process with that tree first on
PYTHONPATH, timing on the same samples (SmolLM2-135M-Instruct, the paper's GSM8K) a training
forward+backward and ``layergrad.compute`` in two modes: ``paper`` (paper formatting, all seven
kinds) and ``default``. Only the public API (load_model, load_samples, compute) is used, so any
commit can be timed; REFs are checked out into temporary git worktrees. The original algorithm is
timed once per round by this tree, in a process of its own without OMP_WAIT_POLICY=PASSIVE (for the same
work — layergrad on the original's q/k/v/o in one process — see original_same_work.py). Printed: medians over rounds of seconds per sample, of
layergrad / training step, and of each tree against this one.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baselines import STYLES, time_training  # beside this file: plain transformers only

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODES = {"paper": {"paper": True, "modules": KINDS}, "default": {}}


def worker(args) -> None:
    """In a child process: one JSON line per (mode, style), or the original algorithm's times."""
    import layergrad

    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    layergrad.compute(m, layergrad.load_samples("builtin:arith/none?n=2"))  # warm-up
    for style in args.styles:
        n = args.n if style == "none" else max(1, args.n // 3)
        samples = layergrad.load_samples(f"paper:{STYLES[style]}", limit=n, paper_data=args.paper_data)
        if hasattr(layergrad, "tune"):  # a tree with a kernel plan: time it now, not inside the measurement
            layergrad.tune(m, lengths={len(m.tokenizer(s.prompt + s.response).input_ids) + k
                                       for s in samples for k in range(-8, 48, 8)})
        train = time_training(m.model, m.tokenizer, samples)
        if args.original:
            from layergrad.engine.original import original_record

            start = time.perf_counter()
            for s in samples:
                original_record(m.model, m.tokenizer, s.prompt, s.response, chat=True, model_name=m.name)
            row = {"mode": "original", "style": style, "train": train, "seconds": (time.perf_counter() - start) / n}
            print(json.dumps(row), flush=True)
            continue
        for mode, options in MODES.items():
            start = time.perf_counter()
            layergrad.compute(m, samples, **options)
            row = {"mode": mode, "style": style, "train": train, "seconds": (time.perf_counter() - start) / n,
                   "code": layergrad.__file__}
            print(json.dumps(row), flush=True)


def run_tree(tree: Path, args, original: bool = False) -> list[dict]:
    """One worker process on ``tree``: layergrad under OMP_WAIT_POLICY=PASSIVE (as its CLI runs), the original
    algorithm under the environment's policy (as its script runs; PASSIVE slows MKL's SVDs 3.5x)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if not original:
        env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, __file__, "--worker", "--n", str(args.n), "--paper-data", args.paper_data,
           "--styles", *args.styles] + (["--original"] if original else [])
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr.strip().splitlines()[-1]}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert all(Path(r["code"]).is_relative_to(tree) for r in rows if "code" in r), "another layergrad was imported"
    return rows


def machine() -> str:
    """The CPU model, its cores, the libraries and any kernel setting inherited by the children."""
    import numpy
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    kernels = " ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                                                        "OMP_NUM_THREADS") if k in os.environ)
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, numpy {numpy.__version__}"
            + (f", {kernels}" if kernels else ""))


def report(times: dict) -> None:
    print(f"CPU: {machine()}")
    print("per-sample seconds, median over rounds (layergrad / training step; this tree / the tree):")
    trees = list(dict.fromkeys(label for label, _, _ in times))
    for mode in [*MODES, "original"]:
        for style in sorted({s for _, m, s in times if m == mode}, key=list(STYLES).index):
            here = times.get(("this tree", mode, style))
            for label in trees:
                rows = times.get((label, mode, style))
                if not rows:
                    continue
                sec = statistics.median(r["seconds"] for r in rows)
                ratio = statistics.median(r["seconds"] / r["train"] for r in rows)
                vs = f"  this/that {statistics.median(r['seconds'] for r in here) / sec:.2f}x" if here else ""
                print(f"  {mode:8s} {style:9s} {label:10s} {sec:7.2f} s  {ratio:5.2f}x training{vs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("refs", nargs="*", help="earlier commits (any git revision)")
    parser.add_argument("--n", type=int, default=10, help="None-CoT samples; a third as many of the others")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--styles", nargs="+", default=["none", "detailed"], choices=list(STYLES))
    parser.add_argument("--paper-data", default=str(ROOT.parent / "shared" / "paper-data"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--original", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    times: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = []
        for ref in args.refs:
            path = Path(tmp) / ref.replace("/", "_")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                           capture_output=True)
            trees.append((ref, path))
        try:
            for _ in range(args.rounds):
                for label, tree in trees + [("this tree", ROOT)]:
                    for row in run_tree(tree, args):
                        times.setdefault((label, row["mode"], row["style"]), []).append(row)
                for row in run_tree(ROOT, args, original=True):
                    times.setdefault(("this tree", "original", row["style"]), []).append(row)
                report(times)
        finally:
            for _, path in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)


if __name__ == "__main__":
    main()
