"""The paper's claims, checked on the conditions a run has: one row per (claim, task, module).

Conditions are recognised by name: ``[task<sep>]<style>[@irrelevant]`` with the reasoning styles
none / simplified / detailed (also the original file names no_cot / with_cot / gpt4o) and the
Wikipedia styles popular-100 / popular-500 / popular-1000 / unpopular, e.g. ``none``,
``gsm8k/detailed@irrelevant``, ``wiki/popular-100``, ``run:simplified``. Every claim has a
statement, an operational definition, the conditions it needs, its statistic, its test and its
caveats, all in one ``Claim`` object of the ``REGISTRY``; an effect with a 95% bootstrap CI, a p-value
(Holm-corrected over all module rows of the table), n, a verdict — holds (significant in the
claimed direction), fails (significant the other way), inconclusive, not-applicable (the run
lacks a condition) — and its caveats (lengths that do not overlap; the loss alone separating as
well or better). H4 and H6 compare a base and an instruct model (``model_claims``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from layergrad.analysis.curves import interval, mad, relative_difference, segment_bounds, segment_values
from layergrad.analysis.separability import auroc
from layergrad.analysis.significance import compare, holm, paired_index, relative_change_ci

ALPHA = 0.05
STYLE_NAMES = {"none": "none", "no_cot": "none", "simplified": "simplified", "with_cot": "simplified",
               "detailed": "detailed", "gpt4o": "detailed", "with_cot_gpt4o": "detailed",
               "popular-100": "popular-100", "popular-500": "popular-500", "popular-1000": "popular-1000",
               "unpopular": "unpopular", "high": "high", "low": "low", "gsm8k-r1": "gsm8k-r1", "s1-r1": "s1-r1"}
WIKI_STYLES = ("popular-100", "popular-500", "popular-1000", "unpopular")
QUALITY_STYLES = ("high", "low")  # the follow-up's high- and low-quality subsets
TRACE_STYLES = ("gsm8k-r1", "s1-r1")  # its R1 reasoning traces
COLUMNS = ["claim", "task", "module", "statement", "definition", "verdict", "effect", "ci_low", "ci_high",
           "effect_kind", "a", "b", "p", "p_holm", "n", "caveats"]
ALL = "all modules"


@dataclass(frozen=True)
class Controls:
    """What the caveats read: prompts and response lengths per group, the separability tables."""

    prompts: dict
    lengths: dict
    separability: pd.DataFrame | None = None
    increment: pd.DataFrame | None = None
    reinit: pd.DataFrame | None = None  # the claims table under random weights (--reinit)
    scores: dict = field(default_factory=dict)  # {baseline name: {group: Series by sample_id}} (loss, IFD)


@dataclass(frozen=True)
class Claim:
    """One claim, all of it: its words, the conditions it needs, its statistic, its test, its caveats.

    ``statistic(ctx, found, reasoning, module)`` returns the effect (effect, ci_low, ci_high, p,
    effect_kind, n) for one task and module, or None; ``found`` maps the task's styles to groups and
    ``reasoning`` holds every reasoning task of the run (H7 compares against them). ``caveat(row,
    controls, found)`` says in words what the reader must keep in mind for a row."""

    id: str
    statement: str
    definition: str
    family: str | tuple  # the tasks it applies to: 'reasoning' (CoT styles), 'wiki', 'quality', 'traces' (or several)
    needs: tuple[str, ...]  # styles of the task it needs
    direction: int  # the sign of the effect the claim predicts (0: two-sided, a difference either way)
    compares: tuple[str, str]  # the two styles a row compares
    statistic: Callable
    test: str  # where its p-value comes from
    caveat: Callable = None  # (row, controls, found) -> str; None: the length caveat of the compared pair
    needs_reasoning: bool = False  # also a reasoning task elsewhere in the run
    between_runs: bool = False  # compares a base and an instruct run (H4, H6: model_claims)
    margin: float | None = None  # an equivalence claim: holds when the effect lies within ±margin (TOST)
    metric: str = "nuclear_norm"  # what a between-runs claim reads (its modules come from it)
    modules: Callable | None = None  # (ctx, found) -> the row labels (default: modules with nuclear norms in both)

    def applies(self, task_family: str) -> bool:
        """``family`` is one family or a tuple of them."""
        return task_family in (self.family if isinstance(self.family, tuple) else (self.family,))

    def caveats(self, row, controls: Controls, found: dict) -> str:
        if self.caveat is not None:
            return self.caveat(row, controls, found)
        return length_caveat(row.a, row.b, controls.lengths)


REGISTRY: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    """Add a claim to every claims table from now on (in registration order)."""
    REGISTRY[claim.id] = claim
    return claim


def parse_group(name: str) -> tuple[str, str, bool] | None:
    """'gsm8k/detailed@irrelevant' -> ('gsm8k', 'detailed', True); None when no style is recognised."""
    base, irrelevant = (name[: -len("@irrelevant")], True) if name.endswith("@irrelevant") else (name, False)
    match = re.fullmatch(r"(?:(.*)[-/_:])?(" + "|".join(sorted(STYLE_NAMES, key=len, reverse=True)) + ")", base)
    if not match:
        return None
    return match.group(1) or "", STYLE_NAMES[match.group(2)], irrelevant


def tasks_of(groups: list[str]) -> dict[str, dict[str, str]]:
    """{task: {'none': group, 'detailed@irrelevant': group, ...}} in run order."""
    tasks: dict[str, dict[str, str]] = {}
    for g in groups:
        parsed = parse_group(g)
        if parsed:
            task, style, irrelevant = parsed
            tasks.setdefault(task, {})[style + ("@irrelevant" if irrelevant else "")] = g
    return tasks


def style_label(style: str) -> str:
    """'none@irrelevant' -> 'None CoT (irrelevant)'; other text unchanged."""
    base, _, variant = style.partition("@")
    name = {"none": "None CoT", "simplified": "Simplified CoT", "detailed": "Detailed CoT"}.get(base, base)
    return name + (f" ({variant})" if variant else "")


def family(found: dict) -> str:
    """'wiki', 'quality' (high/low subsets), 'traces' (R1 reasoning traces) or 'reasoning' (CoT styles)."""
    styles = {s.split("@")[0] for s in found}
    for name, members in (("wiki", WIKI_STYLES), ("quality", QUALITY_STYLES), ("traces", TRACE_STYLES)):
        if styles & set(members):
            return name
    return "reasoning"


# ----------------------------------------------------------------------------- statistics

@dataclass
class Context:
    """What every statistic needs: per-sample matrices of the nuclear norm (``matrices``) and of any
    other metric (``metrics``), prompts, resampling."""

    matrices: dict
    prompts: dict
    n_boot: int
    rng: np.random.Generator
    metrics: dict = field(default_factory=dict)  # metric -> {(group, module): samples x layers}

    def of(self, metric: str) -> dict:
        return self.matrices if metric == "nuclear_norm" and metric not in self.metrics else self.metrics.get(metric, {})

    def pair(self, a: str, b: str, module: str):
        """(rows of a, rows of b, paired) for a module, or None when either is missing."""
        if (a, module) not in self.matrices or (b, module) not in self.matrices:
            return None
        ma, mb = self.matrices[(a, module)], self.matrices[(b, module)]
        pairing = paired_index(self.prompts[a].reindex(ma.index).dropna(), self.prompts[b].reindex(mb.index).dropna())
        if pairing:
            return ma.loc[[p[0] for p in pairing]], mb.loc[[p[1] for p in pairing]], True
        return ma, mb, False

    def resample(self, n_a: int, n_b: int, paired: bool) -> tuple[np.ndarray, np.ndarray]:
        """(n_boot, n) row indices for a and for b (the same rows when paired)."""
        ia = self.rng.integers(0, n_a, (self.n_boot, n_a))
        return ia, (ia if paired else self.rng.integers(0, n_b, (self.n_boot, n_b)))


TAIL_DRAWS = 10  # below this many draws beyond zero, the percentile p is only a bound


def boot_p(draws: np.ndarray, effect: float) -> float:
    """Two-sided bootstrap p-value of 'the effect is 0'.

    The share of draws beyond zero, doubled; where fewer than ``TAIL_DRAWS`` draws lie beyond zero
    that share only says p < 10 / draws, which Holm over a table of hundreds of rows would turn
    into 'inconclusive' however large the effect, so the tail is then extrapolated by a normal
    approximation with the bootstrap standard error (the larger of the two is returned).
    """
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan")
    beyond = min((draws <= 0).sum(), (draws >= 0).sum())
    p = 2 * beyond / len(draws)
    if beyond < TAIL_DRAWS:
        se = draws.std(ddof=1) if len(draws) > 1 else 0.0
        wald = float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else (0.0 if effect else 1.0)
        p = max(p, wald)
    return float(min(1.0, p))


def summary(effect: float, draws: np.ndarray, kind: str, n: int) -> dict:
    lo, hi = interval(draws)
    return {"effect": float(effect), "ci_low": float(lo), "ci_high": float(hi), "p": boot_p(draws, effect),
            "effect_kind": kind, "n": int(n)}


def early_change(ctx: Context, a: str, b: str, module: str) -> dict | None:
    """Relative change of the early-layer mean, b vs a, with CI and Wilcoxon / Mann-Whitney p."""
    pair = ctx.pair(a, b, module)
    if pair is None:
        return None
    ma, mb, paired = pair
    x, y = segment_values(ma)["early"].to_numpy(), segment_values(mb)["early"].to_numpy()
    effect, lo, hi = relative_change_ci(x, y, paired, ctx.n_boot, ctx.rng)
    return {"effect": effect, "ci_low": lo, "ci_high": hi, "p": compare(x, y, paired)["p"],
            "effect_kind": "relative change of the early-layer mean", "n": min(len(x), len(y))}


def resampled(ctx: Context, a: str, b: str, module: str, fn):
    """(point, draws, n) of ``fn(mean curve of a, mean curve of b)`` (curves on the last axis) for the
    data and for each bootstrap resample (prompt pairs resampled together), or None."""
    pair = ctx.pair(a, b, module)
    if pair is None:
        return None
    ma, mb, paired = pair
    va, vb = ma.to_numpy(), mb.to_numpy()
    ia, ib = ctx.resample(len(va), len(vb), paired)
    return fn(va.mean(0), vb.mean(0)), fn(va[ia].mean(1), vb[ib].mean(1)), min(len(va), len(vb))


def early_mean(curve: np.ndarray) -> np.ndarray:
    lo, hi = segment_bounds(curve.shape[-1])["early"]
    return curve[..., lo:hi].mean(-1)


def mad_change(ctx: Context, a: str, b: str, module: str) -> dict | None:
    """Relative change of MAD over all layers (of the mean curve), b vs a, bootstrap CI and p."""
    got = resampled(ctx, a, b, module, lambda ca, cb: mad(cb, axis=-1) / mad(ca, axis=-1) - 1)
    return summary(*got[:2], "relative change of MAD (all layers)", got[2]) if got else None


def log_ratio(ctx: Context, a: str, b: str, module: str, statistic: str):
    """(point, draws) of log(stat(b) / stat(a)); stat = early-layer mean or MAD of the mean curve."""
    stat = early_mean if statistic == "early" else (lambda c: mad(c, axis=-1))
    got = resampled(ctx, a, b, module, lambda ca, cb: np.log(stat(cb) / stat(ca)))
    return got[:2] if got else None


def rd_of(ctx: Context, correct: str, irrelevant: str, module: str):
    """(point, draws) of RD(correct, irrelevant) of the mean curves."""
    got = resampled(ctx, correct, irrelevant, module, lambda cc, ci: relative_difference(cc, ci, axis=-1))
    return got[:2] if got else None


def rd_gain(ctx: Context, found: dict, a_style: str, b_style: str, module: str):
    """(point, draws, {style: RD}) of RD(b, b@irrelevant) - RD(a, a@irrelevant)."""
    got = {s: rd_of(ctx, found[s], found[f"{s}@irrelevant"], module) for s in (a_style, b_style)}
    if None in got.values():
        return None
    return (got[b_style][0] - got[a_style][0], got[b_style][1] - got[a_style][1],
            {s: got[s][0] for s in got})


def rd_difference(ctx: Context, found: dict, module: str) -> dict | None:
    """H5: RD(correct, irrelevant) of Detailed minus that of None."""
    got = rd_gain(ctx, found, "none", "detailed", module)
    if got is None:
        return None
    effect, draws, point = got
    n = min(len(ctx.matrices[(found[s], module)]) for s in ("none", "detailed"))
    return summary(effect, draws, f"RD Detailed {point['detailed']:.3f} minus RD None {point['none']:.3f}", n)


def length_vs_thinking(ctx: Context, found: dict, reasoning: dict, module: str, statistic: str) -> dict | None:
    """H7a/b: |log-ratio None→Detailed| (mean over reasoning tasks) minus |log-ratio popular 100→1000|."""
    wiki = log_ratio(ctx, found["popular-100"], found["popular-1000"], module, statistic)
    cot = [log_ratio(ctx, f["none"], f["detailed"], module, statistic) for f in reasoning.values()]
    cot = [c for c in cot if c is not None]
    if wiki is None or not cot:
        return None
    r_cot, d_cot = np.mean([c[0] for c in cot]), np.mean([c[1] for c in cot], axis=0)
    label = "early-layer mean" if statistic == "early" else "MAD"
    kind = (f"|log-ratio| of the {label}: None→Detailed {r_cot:+.2f} (mean of {len(cot)} tasks) vs popular "
            f"100→1000 {wiki[0]:+.2f}")
    n = len(ctx.matrices[(found["popular-100"], module)])
    return summary(abs(r_cot) - abs(wiki[0]), np.abs(d_cot) - np.abs(wiki[1]), kind, n)


def separation_vs_thinking(ctx: Context, found: dict, reasoning: dict, module: str) -> dict | None:
    """H7c: RD gain None→Detailed (mean over reasoning tasks) minus RD gain popular 100→1000."""
    wiki = rd_gain(ctx, found, "popular-100", "popular-1000", module)
    cot = [rd_gain(ctx, f, "none", "detailed", module) for f in reasoning.values()
           if {"none@irrelevant", "detailed@irrelevant"} <= set(f)]
    cot = [c for c in cot if c is not None]
    if wiki is None or not cot:
        return None
    g_cot, d_cot = np.mean([c[0] for c in cot]), np.mean([c[1] for c in cot], axis=0)
    kind = f"RD gain None→Detailed {g_cot:+.3f} (mean of {len(cot)} tasks) minus popular 100→1000 {wiki[0]:+.3f}"
    n = len(ctx.matrices[(found["popular-100"], module)])
    return summary(g_cot - wiki[0], d_cot - wiki[1], kind, n)


# ----------------------------------------------------------------------------- the table

def claims_table(matrices: dict, prompts: dict, lengths: dict, groups: list[str], n_boot: int, seed: int, *,
                 separability: pd.DataFrame | None = None, increment: pd.DataFrame | None = None,
                 metrics: dict | None = None, control: pd.DataFrame | None = None,
                 scores: dict | None = None) -> pd.DataFrame:
    """Every registered claim of each task's family, Holm-corrected, plus one 'all modules' row per
    (claim, task).

    ``matrices``: {(group, module): samples x layers} of the nuclear norm; ``metrics``: the same of
    other metrics (effective_rank, cosine_pair, cosine_next, ...); ``prompts`` and ``lengths``: {group:
    Series by sample_id} of prompt text and response tokens; ``control``: the claims table of the same
    data under random weights (``--reinit``), quoted in the caveats of the claims that ask for it;
    ``scores``: the per-sample baselines by group (``baseline_scores``), for caveats across tasks.
    """
    ctx = Context(matrices, prompts, n_boot, np.random.default_rng(seed), metrics or {})
    tasks = tasks_of(groups)
    reasoning = {t: f for t, f in tasks.items() if family(f) == "reasoning" and {"none", "detailed"} <= set(f)}
    rows = []
    for task, found in tasks.items():
        for claim in REGISTRY.values():
            if claim.applies(family(found)) and not claim.between_runs:
                rows += claim_rows(claim, ctx, task, found, reasoning)
    controls = Controls(prompts, lengths, separability, increment, control, scores or {})
    return judged(pd.DataFrame(rows, columns=COLUMNS),
                  lambda r: REGISTRY[r.claim].caveats(r, controls, tasks.get(r.task, {})))


def claim_rows(claim: Claim, ctx: Context, task: str, found: dict, reasoning: dict) -> list[dict]:
    """One row per module of a task (or one not-applicable row naming what is missing)."""
    missing = [s for s in claim.needs if s not in found]
    if claim.needs_reasoning and not reasoning:
        missing.append("a reasoning task with None and Detailed CoT")
    if missing:
        return [not_applicable(claim, task, f"needs {' and '.join(map(style_label, missing))}, which the run does "
                               "not have")]
    a, b = (found[s] for s in claim.compares) if claim.compares else ("", "")
    rows = []
    modules = claim.modules(ctx, found) if claim.modules else [m for (g, m) in ctx.matrices if g == a
                                                               and (b, m) in ctx.matrices]
    for module in modules:
        stat = claim.statistic(ctx, found, reasoning, module)
        if stat:
            rows.append({"claim": claim.id, "task": task, "module": module, "statement": claim.statement,
                         "definition": claim.definition, "a": a, "b": b, **stat})
    if not rows and claim.modules:
        return [not_applicable(claim, task, "the run holds no values it reads (e.g. computed without --cosine)")]
    return rows


def judged(table: pd.DataFrame, caveat) -> pd.DataFrame:
    """Holm, verdicts, caveats and the 'all modules' summaries of a table of module rows."""
    if table.empty:
        return table
    table = judge(table)
    table["caveats"] = [r.caveats if r.verdict == "not-applicable" else caveat(r) for r in table.itertuples()]
    return pd.concat([table, module_summaries(table)], ignore_index=True)[COLUMNS]


def not_applicable(claim: Claim, task: str, why: str) -> dict:
    return {"claim": claim.id, "task": task, "module": ALL, "statement": claim.statement,
            "definition": claim.definition, "verdict": "not-applicable", "caveats": why}


def judge(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over the table's module rows, then each row's verdict by its claim's direction."""
    table = table.astype({"verdict": object, "p_holm": float})
    rows = table.verdict.isna().to_numpy()
    table.loc[rows, "p_holm"] = holm(table.loc[rows, "p"].to_numpy(dtype=float))
    direction = table.claim.map(lambda c: REGISTRY[c].direction)
    sign = np.sign(table.effect.to_numpy(dtype=float)) * direction.to_numpy(dtype=float)
    significant = table.p_holm.to_numpy(dtype=float) < ALPHA
    two_sided = direction.to_numpy() == 0
    verdict = np.where(significant & ((sign > 0) | two_sided), "holds",
                       np.where(significant & (sign < 0), "fails", "inconclusive"))
    margin = table.claim.map(lambda c: REGISTRY[c].margin if REGISTRY[c].margin is not None else np.nan)
    margin = margin.to_numpy(dtype=float)
    outside = (table.ci_low.to_numpy(dtype=float) > margin) | (table.ci_high.to_numpy(dtype=float) < -margin)
    verdict = np.where(np.isfinite(margin), np.where(significant, "holds", np.where(outside, "fails", "inconclusive")),
                       verdict)
    table.loc[rows, "verdict"] = verdict[rows]
    return table


def module_summaries(table: pd.DataFrame) -> pd.DataFrame:
    """One 'all modules' row per (claim, task): holds if most modules hold and none fails (fails alike)."""
    rows = []
    for (claim, task), part in table[table.module != ALL].groupby(["claim", "task"], sort=False):
        counts = part.verdict.value_counts()
        holds, fails, n = int(counts.get("holds", 0)), int(counts.get("fails", 0)), len(part)
        verdict = ("holds" if holds > n / 2 and not fails else "fails" if fails > n / 2 and not holds
                   else "inconclusive")
        first = part.iloc[0]
        rows.append({"claim": claim, "task": task, "module": ALL, "statement": first.statement,
                     "definition": first.definition, "verdict": verdict, "effect": float(part.effect.median()),
                     "effect_kind": f"median over modules; {holds} of {n} hold, {fails} fail", "a": first.a,
                     "b": first.b, "n": int(part.n.min()), "caveats": first.caveats})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- caveats

def length_caveat(a: str, b: str, lengths: dict) -> str:
    """Response lengths of the two conditions: disjoint ranges make length a rival explanation."""
    if a not in lengths or b not in lengths:
        return ""
    la, lb = lengths[a].to_numpy(dtype=float), lengths[b].to_numpy(dtype=float)
    lo, hi = max(la.min(), lb.min()), min(la.max(), lb.max())
    if lo > hi:
        return (f"response lengths do not overlap ({a} {la.min():.0f}–{la.max():.0f} tokens, {b} {lb.min():.0f}–"
                f"{lb.max():.0f}): length alone could produce this difference")
    share = float(((np.r_[la, lb] >= lo) & (np.r_[la, lb] <= hi)).mean())
    return f"{share:.0%} of the samples lie in the length range both conditions share"


def baseline_scores(samples: pd.DataFrame) -> dict:
    """{name: {group: Series by sample_id}} of the cheap per-sample scores a run has: loss, and IFD."""
    columns = [("loss", "loss")] + ([("IFD", "ifd")] if "ifd" in samples.columns else [])
    return {name: {g: rows.set_index("sample_id")[col].astype(float) for g, rows in samples.groupby("group")}
            for name, col in columns}


def baseline_auroc_caveat(a: str, b: str, controls: Controls) -> str:
    """'AUROC length x, loss y, IFD z' of a against b, from the per-group values (any two groups of a run)."""
    parts = []
    for name, values in (("length", controls.lengths), *controls.scores.items()):
        if a in values and b in values:
            va, vb = values[a].to_numpy(dtype=float), values[b].to_numpy(dtype=float)
            va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
            if len(va) and len(vb):
                parts.append(f"{name} {auroc(np.r_[np.zeros(len(va)), np.ones(len(vb))], np.r_[va, vb]):.2f}")
    return f"AUROC {b} vs {a}: " + ", ".join(parts) if parts else ""


def range_caveat(group: str, lengths: dict) -> str:
    """A one-condition claim's length note: the range and median of its response lengths."""
    if group not in lengths or not len(lengths[group]):
        return ""
    values = lengths[group].to_numpy(dtype=float)
    return f"{group}: responses {values.min():.0f}–{values.max():.0f} tokens (median {np.median(values):.0f})"


def separability_caveat(row, controls: Controls, found: dict) -> str:
    """Does the loss separate correct from irrelevant as well as the gradient? Beyond-loss value."""
    separability, increment = controls.separability, controls.increment
    if separability is None or separability.empty:
        return ""
    notes = []
    for style in ("detailed", "none"):
        a, b = found[style], found[f"{style}@irrelevant"]
        rows = separability[(separability.a == a) & (separability.b == b)].set_index("score")
        grad = rows[(rows.kind == "gradient") & (rows.metric == "nuclear_norm")]
        if "loss" not in rows.index or grad.empty:
            continue
        loss, best = rows.loc["loss", "auroc"], grad.auroc.max()
        note = f"{style}: AUROC loss {loss:.2f} {'≥' if loss >= best else '<'} gradient {best:.2f}"
        inc = increment[(increment.a == a) & (increment.b == b)] if increment is not None and len(increment) else []
        if len(inc):
            r = inc.iloc[0]
            note += f", profile adds {r.gain:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] beyond loss and length"
        notes.append(note)
    return "; ".join(notes)


def no_caveat(row, controls: Controls, found: dict) -> str:
    return ""


# ----------------------------------------------------------------------------- base vs instruct

def model_claims(matrices: dict, prompts: dict, base_groups: list[str], instruct_groups: list[str], n_boot: int,
                 seed: int, *, metrics: dict | None = None, ids: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The between-runs claims per task and module, a first run's groups against a second's (for H4 and
    H6 a base and an instruct run); ``ids``: only those claims."""
    ctx = Context(matrices, prompts, n_boot, np.random.default_rng(seed), metrics or {})
    base, instruct = tasks_of(base_groups), tasks_of(instruct_groups)
    strip = lambda t: t.split(":", 1)[1] if ":" in t else t  # noqa: E731  (the run label)
    instruct = {strip(t): f for t, f in instruct.items()}
    rows = []
    for task, fb in base.items():
        fi, name = instruct.get(strip(task)), strip(task)
        for claim in (c for c in REGISTRY.values() if c.between_runs and c.applies(family(fb))
                      and (ids is None or c.id in ids)):
            missing = [s for s in claim.needs if s not in fb or fi is None or s not in fi]
            if missing:
                rows.append(not_applicable(claim, name, f"needs {' and '.join(map(style_label, missing))} in both runs"))
                continue
            for module in [m for (g, m) in ctx.of(claim.metric) if g == fb[claim.needs[0]]]:
                stat = claim.statistic(ctx, fb, fi, module)
                if stat:
                    rows.append({"claim": claim.id, "task": name, "module": module, "statement": claim.statement,
                                 "definition": claim.definition, "a": fb[claim.compares[1]],
                                 "b": fi[claim.compares[1]], **stat})
    controls = Controls(prompts, {})  # no lengths: the between-runs caveats are about the models
    return judged(pd.DataFrame(rows, columns=COLUMNS), lambda r: REGISTRY[r.claim].caveats(r, controls, {}))


def gap_base_vs_instruct(ctx: Context, fb: dict, fi: dict, module: str) -> dict | None:
    """H4: |log-ratio None→Detailed| of the early-layer mean, instruct minus base."""
    got = [log_ratio(ctx, f["none"], f["detailed"], module, "early") for f in (fb, fi)]
    if None in got:
        return None
    (rb, db), (ri, di) = got
    return summary(abs(ri) - abs(rb), np.abs(di) - np.abs(db),
                   f"|log-ratio| None→Detailed: instruct {ri:+.2f}, base {rb:+.2f}",
                   len(ctx.matrices[(fb["none"], module)]))


def rd_base_vs_instruct(ctx: Context, fb: dict, fi: dict, module: str) -> dict | None:
    """H6: RD(correct, irrelevant) of Detailed CoT, instruct minus base."""
    got = [rd_of(ctx, f["detailed"], f["detailed@irrelevant"], module) for f in (fb, fi)]
    if None in got:
        return None
    (pb, db), (pi, di) = got
    return summary(pi - pb, di - db, f"RD Detailed: instruct {pi:.3f}, base {pb:.3f}",
                   len(ctx.matrices[(fb["detailed"], module)]))


# ----------------------------------------------------------------------------- the paper's claims

def pair_statistic(fn, a_style: str, b_style: str):
    """A statistic of the task's two styles (``fn(ctx, a, b, module)``)."""
    return lambda ctx, found, reasoning, module: fn(ctx, found[a_style], found[b_style], module)


register_claim(Claim(
    "H1", "Early-layer nuclear norm: None > Detailed CoT",
    "Relative change of the per-sample mean nuclear norm over the early layers, Detailed vs None (negative = holds); "
    "paired Wilcoxon on shared prompts.", "reasoning", ("none", "detailed"), -1, ("none", "detailed"),
    pair_statistic(early_change, "none", "detailed"), "paired Wilcoxon (Mann-Whitney when unpaired)"))
register_claim(Claim(
    "H2", "MAD over all layers: None > Detailed CoT",
    "Relative change of the MAD of the mean nuclear-norm curve over all layers, Detailed vs None (negative = holds: "
    "slow thinking gives a flatter curve); bootstrap over prompts.", "reasoning", ("none", "detailed"), -1,
    ("none", "detailed"), pair_statistic(mad_change, "none", "detailed"), "bootstrap"))
register_claim(Claim(
    "H3a", "Early-layer nuclear norm: Simplified > Detailed CoT",
    "Relative change of the early-layer mean, Detailed vs Simplified (negative = holds); Wilcoxon. The paper states "
    "it for MATH; on the other tasks it is the inferred None ≥ Simplified ≥ Detailed.", "reasoning",
    ("simplified", "detailed"), -1, ("simplified", "detailed"), pair_statistic(early_change, "simplified", "detailed"),
    "paired Wilcoxon (Mann-Whitney when unpaired)"))
register_claim(Claim(
    "H3b", "MAD over all layers: Simplified > Detailed CoT",
    "Relative change of the MAD over all layers, Detailed vs Simplified (negative = holds); bootstrap.", "reasoning",
    ("simplified", "detailed"), -1, ("simplified", "detailed"), pair_statistic(mad_change, "simplified", "detailed"),
    "bootstrap"))
register_claim(Claim(
    "H5", "Correct vs irrelevant differ more for Detailed than for None CoT (RD)",
    "RD(correct, irrelevant) of the mean nuclear-norm curves for Detailed minus that for None (positive = holds); "
    "bootstrap over prompts. The AUROC of loss, length and gradient is in the caveats.", "reasoning",
    ("none", "detailed", "none@irrelevant", "detailed@irrelevant"), 1, ("none", "detailed"),
    lambda ctx, found, reasoning, module: rd_difference(ctx, found, module), "bootstrap", separability_caveat))
register_claim(Claim(
    "H7a", "Longer Wikipedia answers do not reproduce slow thinking's early-layer drop",
    "|log-ratio None→Detailed| (mean over the run's reasoning tasks) minus |log-ratio popular 100→1000 words| of the "
    "early-layer mean nuclear norm (positive = holds: length alone changes it less); bootstrap.", "wiki",
    ("popular-100", "popular-1000"), 1, ("popular-100", "popular-1000"),
    lambda ctx, found, reasoning, module: length_vs_thinking(ctx, found, reasoning, module, "early"), "bootstrap",
    no_caveat, needs_reasoning=True))
register_claim(Claim(
    "H7b", "Longer Wikipedia answers do not reproduce slow thinking's flat curve",
    "The same comparison for the MAD over all layers (positive = holds); bootstrap.", "wiki",
    ("popular-100", "popular-1000"), 1, ("popular-100", "popular-1000"),
    lambda ctx, found, reasoning, module: length_vs_thinking(ctx, found, reasoning, module, "mad"), "bootstrap",
    no_caveat, needs_reasoning=True))
register_claim(Claim(
    "H7c", "Longer Wikipedia answers do not reproduce slow thinking's correct/irrelevant gap",
    "RD(correct, irrelevant) gain None→Detailed (mean over reasoning tasks) minus the gain popular 100→1000 "
    "(positive = holds); bootstrap.", "wiki",
    ("popular-100", "popular-1000", "popular-100@irrelevant", "popular-1000@irrelevant"), 1,
    ("popular-100", "popular-1000"), lambda ctx, found, reasoning, module: separation_vs_thinking(ctx, found, reasoning,
                                                                                                   module),
    "bootstrap", no_caveat, needs_reasoning=True))
register_claim(Claim(
    "H7d", "Popular and long-tail knowledge differ in early-layer nuclear norm",
    "Relative change of the early-layer mean, unpopular vs popular (100 words, the closest length); two-sided: the "
    "direction is reported, not claimed; Mann-Whitney (different articles).", "wiki", ("popular-100", "unpopular"), 0,
    ("popular-100", "unpopular"), pair_statistic(early_change, "popular-100", "unpopular"), "Mann-Whitney"))
register_claim(Claim(
    "H4", "The None-vs-Detailed gap is smaller for the base model than for the instruct model",
    "|log-ratio None→Detailed| of the early-layer mean nuclear norm, instruct minus base (positive = holds); each "
    "model's samples resampled on their own.", "reasoning", ("none", "detailed"), 1, ("none", "detailed"),
    gap_base_vs_instruct, "bootstrap", no_caveat, between_runs=True))
register_claim(Claim(
    "H6", "Correct vs irrelevant differ less for the instruct model than for the base model",
    "RD(correct, irrelevant) of the Detailed CoT curves, instruct minus base (negative = holds).", "reasoning",
    ("detailed", "detailed@irrelevant"), -1, ("detailed", "detailed@irrelevant"), rd_base_vs_instruct, "bootstrap",
    no_caveat, between_runs=True))
