"""The original algorithm against layergrad on the same work, in one process, on the same samples.

    python benchmarks/original_same_work.py [--n 5] [--rounds 2] [--style detailed] [--paper-data DIR]

SmolLM2-135M-Instruct, the first n samples of the paper's GSM8K (Detailed CoT by default). Each round times,
alternating, per sample:

- a training step: forward + backward, every weight its gradient (no optimizer);
- the original as its script runs it: a backward that gives q/k/v/o their ``param.grad``, then
  ``torch.linalg.svd`` of each (with U and V, which it discards);
- the original with values-only SVDs (``torch.linalg.svdvals``: the same singular values without U and V);
- layergrad ``--paper`` on the original's own modules (q/k/v/o) and formatting.

Every path runs once on one sample before the first round (kernels, workspaces, the kernel plan); medians
over rounds are printed with the CPU. Same process, same samples, same modules: the comparison the docs
quote. ``OMP_WAIT_POLICY`` is left as the environment has it (the original's scripts run without it; the
layergrad CLI sets PASSIVE, under which MKL's two-thread SVDs take 3.5x longer: run both to see it).
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch  # noqa: E402
from baselines import STYLES, time_training  # noqa: E402

import layergrad  # noqa: E402
from layergrad.engine.original import original_record  # noqa: E402
from layergrad.engine.plan import cpu_name  # noqa: E402

QKVO = "q_proj,k_proj,v_proj,o_proj"


def per_sample(fn, samples) -> float:
    start = time.perf_counter()
    fn(samples)
    return (time.perf_counter() - start) / len(samples)


def original(m, vectors: bool):
    def run(samples):
        for s in samples:
            original_record(m.model, m.tokenizer, s.prompt, s.response, chat=True, model_name=m.name, vectors=vectors)
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--style", default="detailed", choices=list(STYLES))
    parser.add_argument("--paper-data", default=os.environ.get("LAYERGRAD_PAPER_DATA",
                                                               str(Path(__file__).resolve().parents[2] / "shared" /
                                                                   "paper-data")))
    args = parser.parse_args()
    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    samples = layergrad.load_samples(f"paper:{STYLES[args.style]}", limit=args.n, paper_data=args.paper_data)
    paths = {
        "training step": lambda ss: time_training(m.model, m.tokenizer, ss),
        "original (svd with U, V)": original(m, True),
        "original (svdvals)": original(m, False),
        "layergrad --paper, q/k/v/o": lambda ss: layergrad.compute(m, ss, paper=True, modules=QKVO),
    }
    for fn in paths.values():  # warm-up
        fn(samples[:1])
    times = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            times[name].append(per_sample(fn, samples))
    print(f"{cpu_name()} ({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, GSM8K {args.style}, n={len(samples)}, "
          f"{args.rounds} rounds (medians, s per sample)")
    train = statistics.median(times["training step"])
    lg = statistics.median(times["layergrad --paper, q/k/v/o"])
    for name, values in times.items():
        sec = statistics.median(values)
        print(f"  {name:30s} {sec:7.2f} s  {sec / train:5.2f}x a training step  {sec / lg:5.2f}x layergrad")


if __name__ == "__main__":
    main()
