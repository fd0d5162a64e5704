"""Per-sample time on CPU: the original algorithm vs a training forward+backward vs layergrad.

    python benchmarks/cpu_vs_original.py [--n 10] [--rounds 3] [--paper-data ../shared/paper-data]

SmolLM2-135M-Instruct, the paper's GSM8K None / Simplified / Detailed CoT. All three are timed
in the same process on the same samples; ratios are to the training forward+backward.
layergrad runs synchronously (the CPU default) and overlapped (--overlap: a batch's solves on a
worker thread while the next batch runs). The training step and layergrad alternate for
``--rounds`` rounds (a shared machine drifts by 10-30% within minutes): medians are printed, and
the range of the per-round layergrad/training ratio. The original runs once (it is the slow one).
Targets: None <= 0.8x, Detailed <= 1.1x a training step.
"""

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it (before torch loads)
import torch  # noqa: E402
from baselines import STYLES, time_training

import layergrad
from layergrad.engine.batching import Item
from layergrad.engine.compute import ComputeOptions, make_formatter
from layergrad.engine.original import original_record

def time_original(m, samples):
    start = time.perf_counter()
    for s in samples:
        original_record(m.model, m.tokenizer, s.prompt, s.response, chat=True, model_name=m.name)
    return (time.perf_counter() - start) / len(samples)


def time_layergrad(m, samples, overlap: bool):
    start = time.perf_counter()
    layergrad.compute(m, samples, overlap=overlap)
    return (time.perf_counter() - start) / len(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paper-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "paper-data"))
    args = parser.parse_args()
    m = layergrad.load_model("smollm2-135m-instruct")
    fmt = make_formatter(m, ComputeOptions())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n} per style, "
          f"{args.rounds} rounds (medians)")
    print(f"{'style':11s} {'tokens':>7s} {'train s':>8s} {'original':>9s} {'lg sync':>8s} {'lg ovl':>7s} "
          f"{'orig/train':>10s} {'sync/train':>10s} {'ovl/train':>9s} {'orig/sync':>9s}  sync/train by round")
    layergrad.compute(m, layergrad.load_samples("builtin:arith/none?n=2"))  # warm-up
    for style, source in STYLES.items():
        samples = layergrad.load_samples(f"paper:{source}", limit=args.n, paper_data=args.paper_data)
        items = [Item(style, s, fmt.encode(s)) for s in samples]
        tokens = sum(it.encoded.n_tokens for it in items) / len(items)
        orig = time_original(m, samples)
        rounds = [(time_training(m, items), time_layergrad(m, samples, overlap=False),
                   time_layergrad(m, samples, overlap=True)) for _ in range(args.rounds)]
        train, sync, ovl = (statistics.median(column) for column in zip(*rounds))
        spread = [s / t for t, s, _ in rounds]
        print(f"{style:11s} {tokens:7.0f} {train:8.2f} {orig:9.2f} {sync:8.2f} {ovl:7.2f} {orig / train:9.2f}x "
              f"{sync / train:9.2f}x {ovl / train:8.2f}x {orig / sync:8.2f}x  {min(spread):.2f}-{max(spread):.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
