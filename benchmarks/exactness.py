"""layergrad's statistics against a float64 model's materialised gradients (the outside reference).

    python benchmarks/exactness.py [--n 3] [--styles none detailed] [--paper-data ../shared/paper-data] [--candidates] [--products]

SmolLM2-135M-Instruct, the paper's GSM8K, all seven kinds in every layer: layergrad computes on the
float32 model as usual; the reference is a float64 copy of the same model, one sample at a time, plain
autograd (param.grad), fp64 SVD of every weight gradient. Printed per style: the largest relative
deviation of the nuclear norm, σ1, the Frobenius norm, the σ1 ratio and the effective rank over all
(sample, layer, module), and their 99th percentile. (What fp32 itself costs: the forward/backward in
float32 against float64.) ``--candidates``: the same for every candidate recipe of the kernel plan
(engine/plan/), each forced on every target in turn, against the same references. ``--products``: the
same for every kernel of the linear layers' products (engine/products.py), each forced on all in turn.
"""

import argparse
import contextlib
import copy
from pathlib import Path

import numpy as np
import torch

import layergrad
from layergrad.engine import plan, products
from layergrad.engine.batching import Item
from layergrad.engine.compute import make_formatter
from layergrad.engine.options import ComputeOptions
from layergrad.engine.projections import select_targets

COLUMNS = ("nuclear_norm", "sigma_max", "frobenius_norm", "sigma1_ratio", "effective_rank")


def fp64_reference(model64, item) -> dict:
    """{param: (nuclear, σ1, Frobenius, σ1 ratio, effective rank)} of one sample by autograd on the float64
    model."""
    targets = select_targets(model64, "all")
    for p in model64.parameters():
        p.requires_grad_(False)
        p.grad = None
    for t in targets:
        t.module.weight.requires_grad_(True)
    ids = torch.tensor([item.encoded.input_ids])
    labels = ids.clone()
    labels[0, :max(item.encoded.n_prompt, 1)] = -100
    model64(input_ids=ids, labels=labels).loss.backward()
    out = {}
    for t in targets:
        g = t.module.weight.grad
        g = g if t.rows is None else g[t.rows[0]:t.rows[1]]
        s = torch.linalg.svdvals(g if g.shape[0] >= g.shape[1] else g.T)
        p = s / s.sum()
        p = p[p > 0]
        out[t.param] = (float(s.sum()), float(s[0]), float(g.norm()), float(s[0] / s.sum()),
                        float(torch.exp(-(p * p.log()).sum())))
        t.module.weight.grad = None
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--styles", nargs="+", default=["none", "detailed"])
    parser.add_argument("--paper", action="store_true", help="paper formatting (q/k/v/o unless --all-kinds)")
    parser.add_argument("--candidates", action="store_true", help="every candidate recipe of the kernel plan")
    parser.add_argument("--products", action="store_true", help="every kernel of the linear layers' products")
    parser.add_argument("--paper-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "paper-data"))
    args = parser.parse_args()
    m = layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)
    model64 = copy.deepcopy(m.model).double().eval()
    opts = ComputeOptions(paper=args.paper, modules="all").resolved()
    fmt = make_formatter(m, opts)
    recipes = {"the plan": contextlib.nullcontext}
    if args.candidates:
        recipes.update({r.describe(): (lambda r=r: plan.forced(r)) for r in plan.candidates()})
    if args.products:
        recipes.update({f"products by {k}": (lambda k=k: plan.forced_products(k)) for k in products.kernels()})
    for style in args.styles:
        samples = layergrad.load_samples(f"paper:gsm8k/{style}", limit=args.n, paper_data=args.paper_data)
        refs = {s.sample_id: fp64_reference(model64, Item("x", s, fmt.encode(s))) for s in samples}
        tokens = np.mean([fmt.encode(s).n_response for s in samples])
        for label, recipe in recipes.items():
            with recipe():
                frame = layergrad.compute(m, samples, paper=args.paper, modules="all")
            errors = {c: [] for c in COLUMNS}
            for s in samples:
                rows = frame[frame.sample_id == s.sample_id].set_index("param")
                for param, values in refs[s.sample_id].items():
                    for column, want in zip(COLUMNS, values):
                        errors[column].append(abs(rows.loc[param, column] - want) / want)
            print(f"{style:9s} {label} ({len(samples)} samples, {tokens:.0f} response tokens, "
                  f"{len(errors['nuclear_norm'])} matrices): " + "; ".join(
                      f"{c} max {max(e):.1e} p99 {np.percentile(e, 99):.1e}" for c, e in errors.items()), flush=True)


if __name__ == "__main__":
    main()
