"""layergrad / training-step ratios of this tree against an earlier commit, in one session.

    python benchmarks/against_commit.py REF [--n 10] [--rounds 2] [--styles none detailed]

The ratio to a training step is meant to cancel the machine's speed, but it does not fully: the
eigensolves are memory-bound and the training step is not, so the same code gives different ratios
on different machines (issue 14's "today", measured on the machine that filed it, against what
its code gives here). "No worse than before" is therefore checked by running both versions here,
alternating: each round runs REF, then this tree, each in a fresh process that times training steps
and `layergrad.compute` on the same samples (SmolLM2-135M-Instruct, the paper's GSM8K). REF is
checked out into a temporary git worktree, removed afterwards.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baselines import STYLES, time_training  # beside this file; its layergrad is the tree on PYTHONPATH

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """In a child process, with the tree under test first on PYTHONPATH: one JSON line per style."""
    import layergrad
    from layergrad.engine.batching import Item
    from layergrad.engine.compute import ComputeOptions, make_formatter

    m = layergrad.load_model("smollm2-135m-instruct")
    fmt = make_formatter(m, ComputeOptions())
    layergrad.compute(m, layergrad.load_samples("builtin:arith/none?n=2"))  # warm-up
    for style in args.styles:
        n = args.n if style == "none" else max(1, args.n // 3)
        samples = layergrad.load_samples(f"paper:{STYLES[style]}", limit=n, paper_data=args.paper_data)
        items = [Item(style, s, fmt.encode(s)) for s in samples]
        train = time_training(m, items)
        start = time.perf_counter()
        layergrad.compute(m, samples)
        lg = (time.perf_counter() - start) / n
        print(json.dumps({"style": style, "train": train, "layergrad": lg, "code": layergrad.__file__}), flush=True)


def run_tree(tree: Path, args) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    cmd = [sys.executable, __file__, "--worker", "--n", str(args.n), "--paper-data", args.paper_data,
           "--styles", *args.styles]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert all(Path(r["code"]).is_relative_to(tree) for r in rows), "the child imported another layergrad"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ref", nargs="?", help="the earlier commit (any git revision)")
    parser.add_argument("--n", type=int, default=10, help="None-CoT samples; a third as many of the others")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--styles", nargs="+", default=["none", "detailed"], choices=list(STYLES))
    parser.add_argument("--paper-data", default=str(ROOT.parent / "shared" / "paper-data"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.ref:
        parser.error("give the commit to compare against, e.g. fba0990")
    ratios: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.ref],
                       check=True, capture_output=True)
        try:
            for _ in range(args.rounds):
                for label, tree in ((args.ref, old), ("this tree", ROOT)):
                    for row in run_tree(tree, args):
                        ratios.setdefault((label, row["style"]), []).append(row["layergrad"] / row["train"])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    print(f"layergrad / training step, {args.rounds} rounds (median, range):")
    for (label, style), values in ratios.items():
        print(f"  {label:12s} {style:11s} {statistics.median(values):5.2f}x  "
              f"({min(values):.2f}-{max(values):.2f}x)")


if __name__ == "__main__":
    main()
