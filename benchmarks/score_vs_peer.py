"""`layergrad score` against the data-scoring recipe of the peers, and what --ifd adds, on the same
records in one process.

    python benchmarks/score_vs_peer.py [--n 8] [--rounds 2] [--followup-data ../shared/followup-data]

SmolLM2-135M-Instruct on n high- and n low-reward WizardLM records of the follow-up's data. Timed per
record: a training forward+backward (the yardstick); the peer recipe (OpenDataArena's
NuclearNormScorer / EffectiveRankScorer, the papers' scripts: a full backward, then a full SVD with U
and V of every q/k/v/o weight gradient in every layer); layergrad on q/k/v/o (the same 120 matrices)
and on all seven kinds (210); the same with --ifd (one extra forward, no backward); and the whole
`layergrad.score` (run directory, scored JSONL/Parquet, a top-10% selection). Medians over rounds.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
from baselines import time_training  # noqa: E402

import layergrad  # noqa: E402
from layergrad.engine.original import original_record  # noqa: E402
from layergrad.engine.solvers import cpu_name  # noqa: E402

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]


def per_record(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="records of each of the two files")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--followup-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "followup-data"))
    args = parser.parse_args()
    folder = Path(args.followup_data) / "reward"
    records = [r for name in ("wiz_10k_highest_200.json", "wiz_10k_lowest_200.json")
               for r in json.loads((folder / name).read_text())[:args.n]]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "records.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records))
        m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
        samples = layergrad.load_samples(str(data))
        n = len(samples)
        layergrad.compute(m, samples[:2])  # warm-up (and solver calibration)
        peer = lambda: [original_record(m.model, m.tokenizer, s.prompt, s.response, chat=True,  # noqa: E731
                                        model_name=m.name) for s in samples]
        runs = {"training step": lambda: None, "peer recipe (q/k/v/o, full SVD)": peer,
                "layergrad q/k/v/o": lambda: layergrad.compute(m, samples, modules=ATTN),
                "layergrad all 7 kinds": lambda: layergrad.compute(m, samples),
                "layergrad all 7 kinds --ifd": lambda: layergrad.compute(m, samples, ifd=True)}
        times: dict[str, list[float]] = {k: [] for k in [*runs, "layergrad score --ifd --top 0.1"]}
        for r in range(args.rounds):
            times["training step"].append(time_training(m.model, m.tokenizer, samples))
            for name, fn in list(runs.items())[1:]:
                times[name].append(per_record(fn, n))
            out = Path(tmp) / f"score{r}"
            times["layergrad score --ifd --top 0.1"].append(per_record(lambda: layergrad.score(
                str(data), out, model="smollm2-135m-instruct", ifd=True, top=0.1, quiet=True, log=lambda *a: None), n))
    train = statistics.median(times["training step"])
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {n} records "
          f"({args.n} high- and {args.n} low-reward WizardLM), {args.rounds} rounds (medians)")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:34s} {t:6.2f} s/record  {t / train:5.2f}x training step", flush=True)
    ifd = statistics.median(times["layergrad all 7 kinds --ifd"]) - statistics.median(times["layergrad all 7 kinds"])
    print(f"  --ifd adds {ifd:.2f} s/record = {ifd / train:.2f}x a training step")


if __name__ == "__main__":
    main()
