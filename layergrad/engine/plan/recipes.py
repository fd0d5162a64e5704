"""Decision: how to compute a target's σ² — the route and factored side (R_X·Δ, R_Δ·X, R_Δ·R_Xᵀ or the
dense G), QR or Cholesky, plain or blocked products and Grams, and the eigensolver — per cell (a shape
p×d, the number of targets reading its input, a length on the half-octave grid), timed from its steps and
interpolated in log T; the rule of spectra.py unless another variant is at least 10% faster."""

from __future__ import annotations

import itertools
import math

from layergrad.engine.plan.cache import cached_or_timed, machine_key, timing_enabled
from layergrad.engine.plan.eigensolvers import solver_time
from layergrad.engine.plan.grid import SMALL, around, cell_key, pick
from layergrad.engine.plan.state import STATE, pushed
from layergrad.engine.plan.timing import gram_step, step
from layergrad.engine.spectra import Recipe, rule_recipe

VARIANTS = {"core R_X·Δ": ("core", "x"), "core R_Δ·X": ("core", "delta"), "core R_Δ·R_Xᵀ": ("core", "both"),
            "dense G": ("dense", "x")}


def recipe(t: int, p: int, d: int, *, sharing: int = 1, device: str = "cpu", timing: bool = True) -> Recipe:
    """How to compute the σ² of a p×d target at T positions read by ``sharing`` targets on ``device``.
    ``timing=False`` (inside a run, where the cores are busy): a cell not timed before takes the rule."""
    if STATE.forced_recipes:
        return STATE.forced_recipes[-1]
    sharing = max(sharing, 1)
    if device != "cpu" or not timing_enabled() or t < SMALL:
        return rule_recipe(t, p, d, sharing=sharing, device=device)
    key = (machine_key(), t, p, d, sharing)
    if key not in STATE.recipes:
        chosen = choose(t, p, d, sharing, timing)
        if chosen is None:
            return rule_recipe(t, p, d, sharing=sharing, device=device)
        STATE.recipes[key] = chosen[0]
    return STATE.recipes[key]


def choose(t: int, p: int, d: int, sharing: int, timing: bool = True) -> tuple[Recipe, str, dict] | None:
    """(recipe, variant, {variant: ms}) at length t: the variants' times interpolated in log T between the
    grid points around t; the rule's variant unless another takes at most ``MARGIN`` of its time. None
    when a grid point is not timed and ``timing`` is off."""
    lo, hi = around(t)
    entries = [cached_or_timed("cells", cell_key(g, p, d, sharing), lambda g=g: time_cell(g, p, d, sharing), timing)
               for g in (lo, hi)]
    if None in entries:
        return None
    w = math.log(t / lo) / math.log(hi / lo) if hi > lo else 0.0
    names = [n for n in VARIANTS if all(n in e["variants"] for e in entries)]
    ms = {n: (1 - w) * entries[0]["variants"][n]["ms"] + w * entries[1]["variants"][n]["ms"] for n in names}
    default = variant_of(rule_recipe(t, p, d, sharing=sharing))
    chosen = pick(ms, default if default in ms else min(ms, key=ms.get))
    nearer = entries[0] if w < 0.5 else entries[1]
    return Recipe(**nearer["variants"][chosen]["recipe"]), chosen, ms


def variant_of(r: Recipe) -> str:
    return next(n for n, (route, side) in VARIANTS.items() if route == r.route and (route == "dense" or side == r.factor))


def forced(choice: Recipe):
    """Every cell takes ``choice`` in the body (the candidates' exactness tests and benchmarks)."""
    return pushed(STATE.forced_recipes, choice)


def candidates() -> list[Recipe]:
    """Every recipe the plan may choose on a CPU (each is held to the same fp64 reference by the tests)."""
    sides = [("core", side) for side in ("x", "delta", "both")]
    return [Recipe(route, side, method, product, gram, solver)
            for (route, side), method, product, gram, solver in itertools.product(
                sides, ("qr", "cholesky"), ("plain", "blocked"), ("plain", "blocked"), ("torch", "numpy"))] + \
           [Recipe("dense", "x", "qr", "plain", gram, solver)
            for gram, solver in itertools.product(("plain", "blocked"), ("torch", "numpy"))]


def time_cell(t: int, p: int, d: int, sharing: int) -> dict:
    """Time one cell at length t (a grid point): every variant, each from its steps' fastest candidates
    (``MARGIN`` against the simple default of each step)."""
    kx, kd = min(t, d), min(t, p)
    fx, fd = step("factor", t, d), step("factor", t, p)
    mx, md = pick(fx, "qr"), pick(fd, "qr")
    eig = {n: solver_time(n) for n in {min(kx, p), min(kd, d), min(kd, kx), min(p, d)}}
    variants = {}

    def add(name, total, **choice):
        variants[name] = {"ms": round(total, 4), "recipe": Recipe(*VARIANTS[name], **choice).to_dict()}

    px = step("product", kx, t, p)
    prod_x = pick(px, "plain")
    gram, ms = gram_step(kx, p)
    add("core R_X·Δ", fx[mx] / sharing + px[prod_x] + ms + eig[min(kx, p)][1], method=mx, product=prod_x, gram=gram,
        solver=eig[min(kx, p)][0])
    pd_ = step("product", kd, t, d)
    prod_d = pick(pd_, "plain")
    gram, ms = gram_step(kd, d)
    add("core R_Δ·X", fd[md] + pd_[prod_d] + ms + eig[min(kd, d)][1], method=md, product=prod_d, gram=gram,
        solver=eig[min(kd, d)][0])
    gram, ms = gram_step(kd, kx)  # one method for both factors: X's (Cholesky falls back to QR where it cannot)
    add("core R_Δ·R_Xᵀ", fx[mx] / sharing + fd.get(mx, fd["qr"]) + step("small", kd, t, kx)["plain"] + ms
        + eig[min(kd, kx)][1], method=mx, gram=gram, solver=eig[min(kd, kx)][0])
    gram, ms = gram_step(p, d)
    add("dense G", step("dense", t, p, d)["plain"] + ms + eig[min(p, d)][1], gram=gram, solver=eig[min(p, d)][0])
    return {"timed_at": t, "variants": variants}


def describe(t: int, p: int, d: int, sharing: int) -> str:
    """One line of a cell at length t: its recipe and the variants' times there."""
    if t < SMALL:
        return f"{rule_recipe(t, p, d, sharing=sharing).describe()}  [the rule below {SMALL} positions]"
    chosen, variant, ms = choose(t, p, d, sharing)
    times = ", ".join(f"{name} {v:.2f}" for name, v in sorted(ms.items(), key=lambda kv: kv[1]))
    rule = variant_of(rule_recipe(t, p, d, sharing=sharing))
    return f"{chosen.describe()}  [ms at T={t}: {times}; rule: {rule}]"
