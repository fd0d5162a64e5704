"""How long the analysis of a full-size follow-up reproduction takes (no model needed).

    python benchmarks/followup_analysis.py [--per-set 200] [--no-task-reports]

Writes a synthetic run of the follow-up study's full size into a temporary folder — five metrics x
three pools of high/low pairs, the two R1 trace sets and GSM8K None / Detailed CoT, --per-set samples
each (200: 6,800 samples; SmolLM2's shape, 30 layers x 7 kinds: 1.4 M rows), with IFD, record fields and
both cosines — and its random-weights control (the 6,000 quality samples again), then times what
`reproduce --study followup` does after computing: every task's analysis (tables, and figures and
report unless --no-task-reports), the control's claims and the claims table with its caveats.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from layergrad.engine import statistics
from layergrad.schema import samples_frame, stats_frame
from layergrad.engine.projections import KINDS
from layergrad.analysis.loading import load_runs
from layergrad.data.attributes import attributes_of
from layergrad.reproduction import ReproduceConfig, analyse_grid, claim_table_of
from layergrad.studies import Condition, Study
from layergrad.studies.followup import ALL_CLAIMS, LABELS

METRICS = ("ifd_gpt2", "ifd_qwen7b", "instag", "diff", "reward")
POOLS = ("wiz", "mag", "her")


def conditions() -> dict[str, dict[str, str]]:
    cells = {f"{m}/{p}": {f"{m}/{p}/high": "", f"{m}/{p}/low": ""} for m in METRICS for p in POOLS}
    cells["reasoning"] = {"reasoning/gsm8k-r1": "", "reasoning/s1-r1": ""}
    cells["gsm8k"] = {"gsm8k/none": "", "gsm8k/detailed": ""}
    return cells


def attributes(name: str) -> dict:
    """What each synthetic condition stands for, as the follow-up study's conditions have it."""
    if name.startswith("gsm8k/"):
        return attributes_of(f"paper:{name}")
    if name.startswith("reasoning/"):
        return {"task": "reasoning", "trace": name.split("/")[1], "family": "traces"}
    metric, pool, side = name.split("/")
    return {"task": f"{metric}/{pool}", "metric": metric, "pool": pool, "quality": side, "family": "quality"}


def synthetic_run(root: Path, names: list[str], per_set: int, rng, layers: int = 30) -> Path:
    stats, samples = [], []
    for c, name in enumerate(names):
        level = 1 + 0.3 * np.sin(c)
        for i in range(per_set):
            sid = f"{c:03d}{i:05d}"
            length = int(rng.integers(20, 2000))
            samples.append({"sample_id": sid, "condition": name, "source_index": i, "loss": rng.gamma(2, 0.5),
                            "n_tokens": length + 40, "n_prompt_tokens": 40, "n_response_tokens": length,
                            "truncated": False, "status": "ok", "reason": "", "boundary": "prefix", "prompt": f"q{i}",
                            "response": "r", "loss_conditioned": 1.0, "loss_direct": 1.1, "ifd": rng.uniform(0.5, 1),
                            "ifd_note": "", "meta.reward": rng.normal(), "meta.instag": float(rng.integers(1, 9))})
            sigma = rng.lognormal(np.log(level), 0.3, (layers, len(KINDS), 24)).clip(1e-6)
            sigma.sort(axis=-1)
            values = statistics.evaluate(statistics.Spectrum(
                __import__("torch").from_numpy((sigma[..., ::-1].copy() ** 2).reshape(-1, 24)), 576)).numpy()
            for j, (layer, kind) in enumerate((l, k) for l in range(layers) for k in KINDS):
                stats.append({"sample_id": sid, "condition": name, "layer": layer, "module": kind,
                              "param": f"model.layers.{layer}.{kind}.weight", **dict(zip(statistics.names(), values[j])),
                              "rank_bound": 24, "finite": True, "route": "core", "cosine_next": rng.normal(0, 0.02),
                              "cosine_pair": rng.normal(0, 0.02) if kind in ("q_proj", "k_proj") else np.nan})
    root.mkdir(parents=True)
    stats_frame(stats).to_parquet(root / "stats.parquet", index=False)
    samples_frame(samples).to_parquet(root / "samples.parquet", index=False)
    (root / "run.json").write_text(json.dumps({"config": {"data": {n: "" for n in names}},
                                               "attributes": {n: attributes(n) for n in names},
                                               "model": {"alias": "synthetic", "num_layers": layers}}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-set", type=int, default=200)
    parser.add_argument("--no-task-reports", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cells = conditions()
    names = [c for cell in cells.values() for c in cell]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        synthetic_run(out / "run", names, args.per_set, rng)
        synthetic_run(out / "run-reinit", [n for n in names if n.endswith(("/high", "/low"))], args.per_set, rng)
        made = time.perf_counter() - start
        config = ReproduceConfig(study="followup", out=str(out), task_reports=not args.no_task_reports)
        study = Study("followup", tuple(Condition(n, "", attributes(n)) for n in names), ALL_CLAIMS, LABELS)
        start = time.perf_counter()
        control = claim_table_of(load_runs(out / "run-reinit"), config, study, missing=False)
        analyses, table = analyse_grid(out, cells, config, study, control, log=lambda *a: None)
        seconds = time.perf_counter() - start
    n = len(names) * args.per_set
    print(f"synthetic follow-up run: {n} samples + {len(names) - 4} x {args.per_set} under random weights "
          f"({made:.0f} s to write); analysis of {len(cells)} tasks{'' if args.no_task_reports else ' with reports'} "
          f"and {len(table)} claim rows: {seconds:.0f} s")


if __name__ == "__main__":
    main()
