"""Per-sample time on CPU: the original algorithm vs a training forward+backward vs layergrad.

    python benchmarks/cpu_vs_original.py [--n 10] [--rounds 3] [--paper-data DIR]

SmolLM2-135M-Instruct, the paper's GSM8K None / Simplified / Detailed CoT. All three are timed in
the same process on the same samples; ratios are to the training forward+backward. The training
step and layergrad (default mode, all seven kinds) alternate for ``--rounds`` rounds (a shared
machine drifts by 10-30% within minutes): medians are printed, and the range of the per-round
layergrad/training ratio. The original runs once (it is the slow one). ``OMP_WAIT_POLICY`` is the
environment's for all three (under PASSIVE, the layergrad CLI's setting, MKL's two-thread SVDs of the
original take 3.5x longer); layergrad computes all seven kinds here, the original q/k/v/o: for the same
work see original_same_work.py.
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch  # noqa: E402
from baselines import STYLES, time_training  # noqa: E402

import layergrad  # noqa: E402
from layergrad.engine.original import original_record  # noqa: E402
from layergrad.engine.plan import cpu_name  # noqa: E402


def time_original(m, samples):
    start = time.perf_counter()
    for s in samples:
        original_record(m.model, m.tokenizer, s.prompt, s.response, chat=True, model_name=m.name)
    return (time.perf_counter() - start) / len(samples)


def time_layergrad(m, samples):
    start = time.perf_counter()
    layergrad.compute(m, samples)
    return (time.perf_counter() - start) / len(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paper-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "paper-data"))
    args = parser.parse_args()
    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    print(f"{cpu_name()} ({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"n={args.n} per style, {args.rounds} rounds (medians)")
    print(f"{'style':11s} {'train s':>8s} {'original':>9s} {'layergrad':>9s} {'orig/train':>10s} {'lg/train':>9s} "
          f"{'orig/lg':>8s}  lg/train by round")
    layergrad.compute(m, layergrad.load_samples("builtin:arith/none?n=2"))  # warm-up (and solver calibration)
    for style, source in STYLES.items():
        samples = layergrad.load_samples(f"paper:{source}", limit=args.n, paper_data=args.paper_data)
        orig = time_original(m, samples)
        rounds = [(time_training(m.model, m.tokenizer, samples), time_layergrad(m, samples))
                  for _ in range(args.rounds)]
        train, lg = (statistics.median(column) for column in zip(*rounds))
        spread = [b / a for a, b in rounds]
        print(f"{style:11s} {train:8.2f} {orig:9.2f} {lg:9.2f} {orig / train:9.2f}x {lg / train:8.2f}x "
              f"{orig / lg:7.2f}x  {min(spread):.2f}-{max(spread):.2f}x", flush=True)


if __name__ == "__main__":
    main()
