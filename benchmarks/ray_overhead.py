"""What scoring through Ray Data costs against the local engine, on the same records and the same cores.

    python benchmarks/ray_overhead.py [--followup-data ../shared/followup-data] [--rounds 2]

Two workloads, each scored by two whole commands, run in turn (local, ray, local, ray, ...) so a drift of the
machine's speed hits both alike:

- local: ``layergrad score DATA --out OUT`` (one process, torch on every core);
- ray:   ``layergrad score DATA --out OUT --engine ray --concurrency C`` (a local Ray instance started by the
  command, C scoring actors of one CPU each, C = the cores; it also loads the model once more, before the
  actors, to check it and record its coverage).

Workloads: 200 records on tiny-random-llama (what the engine costs least: Ray's fixed costs show), and the 16
shortest records of the follow-up's Magpie data (InsTag high subset) on SmolLM2-135M-Instruct (a real model's
scoring; the shortest, so that a round takes minutes, not a quarter of an hour).
Both commands use ``layergrad score``'s defaults (every layer, every kind). Printed: seconds per record of each
(median over the rounds) and the ratio ray / local. Whole commands: model loads, Ray's start and the writes are in.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "the answer follows from adding the two numbers and checking the result once more".split()


def tiny_records(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"instruction": f"Question {i}: what is {i} plus {2 * i}?", "input": "",
             "output": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) + f" It is {3 * i}."}
            for i in range(n)]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def compare(name: str, data: Path, model: str, n: int, rounds: int, work: Path) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    base = [sys.executable, "-m", "layergrad", "score", str(data), "--model", model, "-q", "--overwrite"]
    local, ray = [], []
    for k in range(rounds):
        local.append(timed([*base, "--out", str(work / f"{name}-local-{k}")]))
        ray.append(timed([*base, "--out", str(work / f"{name}-ray-{k}"), "--engine", "ray",
                          "--concurrency", str(cores)]))
    row = {"workload": name, "records": n, "rounds": rounds, "actors": cores,
           "local_s_per_record": statistics.median(local) / n, "ray_s_per_record": statistics.median(ray) / n}
    row["ray_over_local"] = row["ray_s_per_record"] / row["local_s_per_record"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followup-data", default="../shared/followup-data")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tiny = work / "tiny.jsonl"
        tiny.write_text("".join(json.dumps(r) + "\n" for r in tiny_records(200)))
        rows = [compare("tiny-200", tiny, "tiny-random-llama", 200, args.rounds, work)]
        source = Path(args.followup_data) / "instag" / "mag_10k_highest_200.json"
        if source.is_file():
            real = work / "magpie.jsonl"
            shortest = sorted(json.loads(source.read_text()), key=lambda r: len(r["instruction"]) + len(r["output"]))
            real.write_text("".join(json.dumps(r) + "\n" for r in shortest[:16]))
            rows.append(compare("smollm2-16", real, "smollm2-135m-instruct", 16, args.rounds, work))
        else:
            print(f"{source} not found: the SmolLM2 workload is left out")
    for row in rows:
        print(f"{row['workload']}: local {row['local_s_per_record']:.3f} s/record, ray ({row['actors']} actors) "
              f"{row['ray_s_per_record']:.3f} s/record, ray/local {row['ray_over_local']:.2f} "
              f"(median of {row['rounds']} rounds)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
