"""Two identical `layergrad compute` runs at once on this machine, against each alone.

    python benchmarks/contention.py [--n 6] [--paper-data ../shared/paper-data]

Each run computes n None + n Simplified CoT GSM8K samples on SmolLM2-135M-Instruct in its own
process (the model load is timed too, as a user would see it). Target: together they finish
within 1.3x the sum of their solo times (the fair share of a 2-core machine, plus 30%).
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(out: Path, n: int, paper_data: str) -> list[str]:
    return [sys.executable, "-m", "layergrad", "compute", "--model", "smollm2-135m-instruct", "--quiet",
            "--paper-data", paper_data, "--limit", str(n), "--data", "none=paper:gsm8k/none",
            "--data", "simplified=paper:gsm8k/simplified", "--out", str(out), "--overwrite"]


def run_together(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(c) for c in commands]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a run failed: {' '.join(p.args)}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--paper-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "paper-data"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = (command(Path(tmp) / name, args.n, args.paper_data) for name in ("a", "b"))
        run_together([a])  # warm the model cache and the page cache
        solo = [run_together([a]), run_together([b])]
        together = run_together([a, b])
    ratio = together / sum(solo)
    print(f"solo {solo[0]:.1f} s and {solo[1]:.1f} s (sum {sum(solo):.1f} s); together {together:.1f} s = "
          f"{ratio:.2f}x the sum (target <= 1.3x): {'ok' if ratio <= 1.3 else 'SLOW'}")


if __name__ == "__main__":
    main()
