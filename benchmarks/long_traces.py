"""Long reasoning traces: per-sample time and peak memory of layergrad against a training step.

    python benchmarks/long_traces.py [--n 3] [--max-length 4096] [--followup-data ../shared/followup-data]

SmolLM2-135M-Instruct on the follow-up's s1.1 DeepSeek-R1 traces (mean 2,740 words), truncated to
--max-length tokens (the follow-up's README runs 4096). Each measurement runs in a fresh process:
peak resident memory (ru_maxrss) above what the process held after loading the model and one warm-up
sample (at 1,024 tokens), and seconds per sample; the training step and layergrad alternate over --rounds.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def worker(args) -> None:
    sys.path.insert(0, str(HERE))
    import layergrad
    from baselines import time_training

    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    path = Path(args.followup_data) / "reasoning" / "s1_R1.json"
    samples = layergrad.load_samples(str(path), limit=args.n + 1)
    warm, samples = samples[:1], samples[1:]
    if args.what == "training":
        time_training(m.model, m.tokenizer, warm)  # paper formatting, truncated as the original: 1024
        from baselines import paper_tokens, training_steps

        encoded = [paper_tokens(m.tokenizer, s.prompt, s.response, max_length=args.max_length) for s in samples]
        base = rss_mib()
        start = time.perf_counter()
        training_steps(m.model, encoded)
        tokens = sum(len(ids) for ids, _ in encoded) / len(encoded)
    else:
        layergrad.compute(m, warm, max_length=1024)
        base = rss_mib()
        start = time.perf_counter()
        frame = layergrad.compute(m, samples, max_length=args.max_length)
        tokens = frame.attrs["samples"].n_tokens.mean()
    seconds = (time.perf_counter() - start) / len(samples)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": args.what, "seconds": seconds, "peak_above_mib": peak - base, "tokens": float(tokens)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--followup-data", default=str(HERE.parents[1] / "shared" / "followup-data"))
    parser.add_argument("--worker", choices=["training", "layergrad"])
    args = parser.parse_args()
    if args.worker:
        args.what = args.worker
        return worker(args)
    rows = {"training": [], "layergrad": []}
    for _ in range(args.rounds):
        for what in rows:
            cmd = [sys.executable, __file__, "--worker", what, "--n", str(args.n), "--max-length", str(args.max_length),
                   "--followup-data", args.followup_data]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}).stdout
            rows[what].append(json.loads(out.strip().splitlines()[-1]))
    t, lg = ({k: statistics.median(r[k] for r in rows[w]) for k in ("seconds", "peak_above_mib", "tokens")}
             for w in ("training", "layergrad"))
    print(f"s1.1 R1 traces at --max-length {args.max_length} ({lg['tokens']:.0f} tokens per sample), {args.rounds} "
          f"rounds, medians: training step {t['seconds']:.2f} s, {t['peak_above_mib']:.0f} MiB above the loaded model; "
          f"layergrad {lg['seconds']:.2f} s ({lg['seconds'] / t['seconds']:.2f}x), {lg['peak_above_mib']:.0f} MiB "
          f"({lg['peak_above_mib'] / t['peak_above_mib']:.2f}x)")


if __name__ == "__main__":
    main()
