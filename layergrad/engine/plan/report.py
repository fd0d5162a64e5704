"""The plan as a run and ``layergrad tune`` see it: ``prepare`` times every cell a run will meet before its
first sample, ``used`` records the entries it consulted (run.json), ``tune``/``tune_model`` print them."""

from __future__ import annotations

import torch

from layergrad.engine.plan.cache import cached, cached_or_timed, forget, machine_key, timing_enabled
from layergrad.engine.plan.eigensolvers import solver
from layergrad.engine.plan.executors import executor
from layergrad.engine.plan.grid import SMALL, around, bucket, cell_key
from layergrad.engine.plan.kernels import PRODUCT_ROWS, PRODUCT_WEIGHTS, PRODUCT_WORK, planned, product_kernel, \
    product_key, product_rows
from layergrad.engine.plan.recipes import describe, recipe
from layergrad.engine.plan.state import STATE


def used(device, cells) -> dict:
    """The plan of a run, for run.json: the machine, and the entry (choice and the times it chose on) of
    every cell, eigensolver size and executor budget it consults."""
    device = torch.device(device)
    out = {"machine": machine_key() if device.type == "cpu" else torch.cuda.get_device_name(device)}
    if not timing_enabled() or STATE.forced_recipes:
        return {**out, "mode": "forced" if STATE.forced_recipes else "rules (LAYERGRAD_PLAN)"}
    with STATE.lock:
        mine = {(section, key): entry for (machine, section, key), entry in STATE.memo.items()
                if machine == machine_key()}
    wanted = {("cells", cell_key(g, p, d, max(s, 1))) for t, p, d, s in cells if t >= SMALL for g in around(t)}
    wanted |= {(section, str(bucket(n))) for t, p, d, s in cells for n in (min(t, p, d), min(p, d))
               for section in ("solver", f"solver {out['machine']}")}
    for (section, key), entry in sorted(mine.items()):
        if (section, key) in wanted or section in ("executor", "products"):
            out.setdefault(section, {})[key] = entry
    return out


def prepare(device, cells) -> dict:
    """Time every ``(t, p, d, sharing)`` cell a run will meet and their eigensolver sizes (before its
    first forward pass, while nothing else runs); the run's plan (``used``)."""
    device = torch.device(device)
    for t, p, d, sharing in sorted(set(cells)):
        if device.type == "cpu":
            recipe(t, p, d, sharing=sharing)
        for n in {min(t, p, d), min(p, d)}:
            solver(device, n)
    return used(device, cells)


def tune(cells: dict, *, retime: bool = False) -> list[str]:
    """Time ``cells`` ({(t, p, d, sharing): label}) on this CPU now (or read them from the cache) and
    describe the plan, a line each: the executor, the eigensolver per size, every cell's choice with
    the times it chose on."""
    if retime:
        forget()
    before = {section: cached(section) for section in ("executor", "solver", "cells")}

    def was(section, key):
        return " (cached)" if key in before[section] else " (timed now)"

    from layergrad.engine.threads import workers

    lines = [f"machine: {machine_key()}"]
    if workers():
        executor(workers())
    used_plan = prepare("cpu", cells)
    for key, entry in used_plan.get("executor", {}).items():
        lines.append(f"executor with {key}: {entry['choice']}  [ms of a stack of jobs: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in entry["ms"].items()) + "]" + was("executor", key))
    for key, entry in sorted(used_plan.get("solver", {}).items(), key=lambda kv: int(kv[0])):
        lines.append(f"eigensolver, n ≤ {key}: {entry['choice']}  [ms per matrix at n={entry['n']}: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in entry["ms"].items()) + "]" + was("solver", key))
    for (t, p, d, sharing), label in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1:])):
        timed = all(cell_key(g, p, d, sharing) in before["cells"] for g in around(t))
        lines.append(f"T={t} {p}x{d} shared by {sharing} ({label}): {describe(t, p, d, sharing)}"
                     + (" (cached)" if timed and t >= SMALL else " (timed now)" if t >= SMALL else ""))
    return lines


def tune_model(m, lengths=(64, 128, 256, 512, 1024, 2048), modules="all", retime: bool = False) -> list[str]:
    """Time the kernel plan of this CPU for a model's shapes (``layergrad tune``), or read it from the cache.

    Args:
        m: A loaded model.
        lengths: Sample lengths (tokens) to plan for.
        modules: Which module kinds.
        retime: Forget this machine's plan and time everything again.

    Returns:
        The plan, a line each: the executor, the eigensolver per size, every (length, shape) cell's recipe with
        the times it was chosen on, and each linear layer's product kernel per size (engine/products.py).
    """
    from layergrad.engine.projections import input_sharing, select_targets

    kinds: dict = {}
    for target, sharing in input_sharing(select_targets(m.model, modules)):
        for t in sorted({int(n) for n in lengths}):
            kinds.setdefault((t, target.p, target.d, sharing), {})[target.kind] = None
    lines = tune({cell: ", ".join(names) for cell, names in kinds.items()}, retime=retime)
    return lines + tune_products(m.model, lengths)


def tune_products(model, lengths) -> list[str]:
    """One line per plain linear shape of ``model`` and row bucket of these lengths: its kernel and the times
    (the LM head's rows are at most the sample's length)."""
    from layergrad.engine.products import plain_linear
    from layergrad.engine.threads import budget

    shapes: dict = {}
    for name, mod in model.named_modules():
        if plain_linear(mod, frozen=False):
            shapes.setdefault((mod.in_features, mod.out_features), {})[name.rsplit(".", 1)[-1]] = None
    before = cached("products")
    lines = []
    for (d_in, d_out), names in shapes.items():
        for rows in sorted({product_rows(n) for n in lengths if n >= PRODUCT_ROWS[0]}):
            span = f"{max(rows // 2 + 1, PRODUCT_ROWS[0])}-{rows}" if rows < PRODUCT_ROWS[1] else f"{rows // 2 + 1}+"
            head = f"linear {d_in}->{d_out} ({', '.join(names)}), {span} rows, {budget()} threads: "
            if not planned(rows, d_in, d_out):
                lines.append(head + f"torch  [below {PRODUCT_WORK:,} multiply-adds or {PRODUCT_WEIGHTS:,} weights: "
                                    "not timed]")
                continue
            choice = product_kernel(rows, d_in, d_out)
            key = product_key(rows, d_in, d_out, budget())
            entry = cached_or_timed("products", key, None, timing=False)
            times = ", ".join(f"{k} {ms:.2f}" for k, ms in sorted(entry["ms"].items(), key=lambda kv: kv[1]))
            lines.append(head + f"{choice}  [ms forward + backward at {rows} rows: {times}]"
                         + (" (cached)" if key in before else " (timed now)"))
    return lines
