"""`layergrad score` streams its input: peak memory at 2,000 and 20,000 records, and a kill -9 + rerun.

    python benchmarks/score_streaming.py [--sizes 2000 20000] [--window 256]

A JSONL file of short records is scored on tiny-random-llama (the last layer's q/k/v/o), each size in a
fresh process whose peak resident memory is read from the kernel (ru_maxrss of the child). Then the
largest file once more, killed with SIGKILL after a few windows and rerun: the rerun computes only the
windows that were not committed.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "we add the numbers then check the answer again before writing it down".split()
PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_records(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as fh:
        for i in range(n):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20)))
            fh.write(json.dumps({"instruction": f"Task {i}: add {i} and {i + 1}.", "output": f"{words} {2 * i + 1}.",
                                 "id": i}) + "\n")


def command(data: Path, out: Path, window: int) -> list[str]:
    return [sys.executable, "-m", "layergrad", "score", str(data), "--model", "tiny-random-llama", "-q",
            "--layers", "-1", "--modules", "attn", "--window", str(window), "--out", str(out)]


def chunks(out: Path) -> int:
    return len(list((out / "run" / "chunks").glob("*.samples.parquet")))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            data = tmp / f"d{n}.jsonl"
            write_records(data, n)
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", PEAK, *command(data, tmp / f"o{n}", args.window)],
                                 capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
            peak_mb = int(out.stdout.split()[-1]) / 1024
            lines = sum(1 for _ in open(tmp / f"o{n}" / "scored.jsonl"))
            print(f"{n:>7,} records: peak RSS {peak_mb:,.0f} MB, {seconds:,.0f} s ({n / seconds:,.0f} records/s), "
                  f"{lines:,} scored lines, {chunks(tmp / f'o{n}')} committed windows", flush=True)
        n = max(args.sizes)
        data, out = tmp / f"d{n}.jsonl", tmp / "killed"
        proc = subprocess.Popen(command(data, out, args.window), start_new_session=True)
        while proc.poll() is None and chunks(out) < 5:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = chunks(out)
        subprocess.run(command(data, out, args.window), check=True)
        total = -(-n // args.window)
        print(f"kill -9 after {before} of {total} windows; the rerun committed {chunks(out) - before} "
              f"(= the {total - before} missing); {sum(1 for _ in open(out / 'scored.jsonl')):,} scored lines")


if __name__ == "__main__":
    main()
