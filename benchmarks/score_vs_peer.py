"""Scoring data: `layergrad` against the peers' recipe on the same long records, in one process.

    python benchmarks/score_vs_peer.py [--n 4] [--rounds 2] [--followup-data ../shared/followup-data]

SmolLM2-135M-Instruct on n InsTag/Magpie records of 600-2,048 tokens (the follow-up's data), formatted as
OpenDataArena's scorers do (``--recipe oda``: instruction + " " + output, the instruction masked). Timed
per record, medians over rounds, each as a multiple of a training step (forward + backward with every
weight's gradient, the yardstick):

- the peers' recipe (OpenDataArena's NuclearNormScorer / EffectiveRankScorer, the papers' scripts): a full
  backward, then ``torch.linalg.svd`` of each chosen weight's ``param.grad``;
- layergrad (``compute``, the backward only down to the lowest chosen layer, exact spectra from the factors);

for the last layer's q/k/v/o, the last four layers' q/k/v/o, every layer's q/k/v/o, and every layer's seven
kinds. Also: the largest relative difference of layergrad's nuclear norms from the peers' on the last
layer (the same numbers, two ways).
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

import layergrad  # noqa: E402
from layergrad.engine.compute import make_formatter  # noqa: E402
from layergrad.engine.options import ComputeOptions  # noqa: E402
from layergrad.engine import plan  # noqa: E402
from layergrad.engine.plan import cpu_name  # noqa: E402
from layergrad.engine.projections import select_targets  # noqa: E402

ATTN = "q_proj,k_proj,v_proj,o_proj"
CASES = {"last layer q/k/v/o": (ATTN, "-1"), "last 4 layers q/k/v/o": (ATTN, "-4:"),
         "all layers q/k/v/o": (ATTN, "all"), "all layers, 7 kinds": ("all", "all")}


def encoded(m, samples):
    fmt = make_formatter(m, ComputeOptions(recipe="oda").resolved())
    return [fmt.encode(s) for s in samples]


def full_backwards(m, items, after=None) -> list:
    """A training step's forward and backward per record (every weight gets its gradient); ``after(m)`` reads
    what it needs from the gradients before they are cleared. Returns its answers."""
    out = []
    for p in m.model.parameters():
        p.requires_grad_(True)
    for e in items:
        ids = torch.tensor([e.input_ids])
        labels = ids.clone()
        labels[0, :e.n_prompt] = -100
        m.model(input_ids=ids, labels=labels).loss.backward()
        if after is not None:
            out.append(after(m))
        m.model.zero_grad(set_to_none=True)
    for p in m.model.parameters():
        p.requires_grad_(False)
    return out


def training_step(m, items) -> None:
    full_backwards(m, items)


def forward_only(m, items) -> None:
    """The floor of any gradient: the forward pass alone (no graph)."""
    with torch.no_grad():
        for e in items:
            m.model(input_ids=torch.tensor([e.input_ids]), use_cache=False)


def peer_recipe(m, items, modules, layers) -> list[dict]:
    """Full backward (every weight gets its gradient, as the scorers leave them), then torch's SVD of the
    chosen weights' param.grad: {param: nuclear norm} per record."""
    targets = select_targets(m.model, modules, layers)

    def nuclear_norms(m):
        grads = {t.param: t.module.weight.grad if t.rows is None else t.module.weight.grad[t.rows[0]:t.rows[1]]
                 for t in targets}
        return {name: float(torch.linalg.svd(g, full_matrices=False).S.sum()) for name, g in grads.items()}
    return full_backwards(m, items, nuclear_norms)


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n


def long_records(folder: Path, m, n: int) -> list:
    rows = json.loads((folder / "instag" / "mag_10k_highest_200.json").read_text())
    samples = layergrad.load_samples(rows, strict=False)
    fmt = make_formatter(m, ComputeOptions(recipe="oda").resolved())
    return [s for s in samples if not s.problem and 600 <= fmt.encode(s).n_tokens <= 2048][:n]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4, help="records (600-2,048 tokens)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))),
                        help="which cases, by position (0: last layer, 1: last 4, 2: all q/k/v/o, 3: all 7 kinds)")
    parser.add_argument("--followup-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "followup-data"))
    args = parser.parse_args()
    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    samples = long_records(Path(args.followup_data), m, args.n)
    items = encoded(m, samples)
    n = len(samples)
    cases = {name: spec for k, (name, spec) in enumerate(CASES.items()) if k in args.cases}
    for modules, layers in cases.values():  # warm-up: the kernel plan of these lengths
        layergrad.compute(m, samples[:1], recipe="oda", modules=modules, layers=layers)
    times: dict[str, list[float]] = {"training step": []}
    for _ in range(args.rounds):
        times["training step"].append(timed(lambda: training_step(m, items), n))
        times.setdefault("forward pass alone", []).append(timed(lambda: forward_only(m, items), n))
        for case, (modules, layers) in cases.items():
            times.setdefault(f"peers: {case}", []).append(timed(lambda: peer_recipe(m, items, modules, layers), n))
            times.setdefault(f"layergrad: {case}", []).append(timed(lambda: layergrad.compute(
                m, samples, recipe="oda", modules=modules, layers=layers), n))
    frame = layergrad.compute(m, samples, recipe="oda", layers="-1").set_index(["sample_id", "param"])
    peer = peer_recipe(m, items, ATTN, "-1")
    worst = max(abs(frame.loc[(s.sample_id, param), "nuclear_norm"] - value) / value
                for s, norms in zip(samples, peer) for param, value in norms.items())
    train = statistics.median(times["training step"])
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {n} InsTag/Magpie records of "
          f"{min(e.n_tokens for e in items)}-{max(e.n_tokens for e in items)} tokens, {args.rounds} rounds (medians)")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:38s} {t:6.2f} s/record  {t / train:6.3f}x training step", flush=True)
    for case in cases:
        peer_t, lg_t = (statistics.median(times[f"{who}: {case}"]) for who in ("peers", "layergrad"))
        print(f"  {case}: layergrad {peer_t / lg_t:.1f}x faster than the peers' recipe")
    print(f"  last layer's nuclear norms, layergrad vs the peers' SVD: largest relative difference {worst:.1e}")
    print(f"  the products' kernels (engine/products.py, the plan's choice here, per record): "
          + "; ".join(sorted({products_line(m, e) for e in items})))


def products_line(m, e) -> str:
    """'kernel: module names' of one record's linear layers, as the plan chooses them."""
    from layergrad.engine.products import plain_linear

    head = m.model.get_output_embeddings()
    chosen: dict[str, set] = {}
    for name, mod in m.model.named_modules():
        if plain_linear(mod, frozen=False):
            rows = e.n_response + 1 if mod is head else e.n_tokens
            chosen.setdefault(plan.product_kernel(rows, mod.in_features, mod.out_features), set()).add(
                name.rsplit(".", 1)[-1])
    return ", ".join(f"{kernel} for {'/'.join(sorted(names))}" for kernel, names in sorted(chosen.items()))


if __name__ == "__main__":
    main()
