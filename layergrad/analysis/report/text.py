"""Numbers in words, one way everywhere: a claim's effect with its CI, Holm p and n (the analysis
report, the replication report and claims.md), and per pair of conditions the significant segment
changes (one sentence each) and the rest in one line."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from layergrad.analysis.claims.testing import rests_on_adjusted

SEGMENT_WORDS = {"all": "average", "early": "early-layer", "middle": "middle-layer", "late": "late-layer"}


def pct(value: float) -> str:
    return f"{value * 100:+.0f}%" if np.isfinite(value) else "n/a"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if np.isfinite(p) else "p n/a"


def change_sentence(row) -> str:
    verb = "raises" if row.rel_change > 0 else "lowers"
    return (f"{row.b} {verb} the {SEGMENT_WORDS[row.unit]} {row.metric.replace('_', ' ')} of {row.module} by "
            f"{abs(row.rel_change) * 100:.0f}% [{row.rel_change_low * 100:+.0f}%, {row.rel_change_high * 100:+.0f}%] "
            f"relative to {row.a} ({'paired' if row.paired else 'unpaired'} {row.test}, Holm {p_text(row.p_holm)}, "
            f"n = {row.n_a}/{row.n_b}).")


def pair_details(tests: pd.DataFrame, length: pd.DataFrame, pairs, metric: str = "nuclear_norm") -> list[dict]:
    """Per pair: a summary line, one sentence per significant segment change, the rest in one line."""
    out = []
    if tests.empty:
        return out
    seg = tests[(tests.metric == metric) & tests.unit.isin(["early", "middle", "late", "all"])]
    for a, b in pairs:
        rows = seg[(seg.a == a) & (seg.b == b)]
        if rows.empty:
            continue
        significant = rows[rows.p_holm < 0.05]
        early = rows[rows.unit == "early"]
        early_sig = significant[significant.unit == "early"]
        summary = (f"early layers: {metric.replace('_', ' ')} significantly lower in {int((early_sig.rel_change < 0).sum())}"
                   f" and higher in {int((early_sig.rel_change > 0).sum())} of {len(early)} modules (Holm p < 0.05)")
        ordered = significant.reindex(significant.rel_change.abs().sort_values(ascending=False).index)
        rest = rows[~(rows.p_holm < 0.05)]
        by_unit = rest.groupby("unit", sort=False)["module"].apply(lambda m: ", ".join(m))
        quiet = "; ".join(f"{SEGMENT_WORDS[u]} {m}" for u, m in by_unit.items())
        out.append({"title": f"{a} → {b}", "summary": summary,
                    "significant": [change_sentence(r) for r in ordered.itertuples()],
                    "not_significant": f"Not significant (Holm p ≥ 0.05): {quiet}." if quiet else "",
                    "length": length_sentence(length, a, b)})
    return out


def length_sentence(length: pd.DataFrame, a: str, b: str) -> str:
    """How much of the q_proj early-layer change survives regressing out log response length."""
    if length.empty or "adjusted_change" not in length:
        return ""
    rows = length[(length.kind == "length-controlled") & (length.a == a) & (length.b == b)
                  & (length.metric == "nuclear_norm") & (length.segment == "early") & (length.module == "q_proj")]
    if rows.empty:
        return ""
    r = rows.iloc[0]
    caveat = (" The two conditions' response lengths do not overlap, so the adjusted number extrapolates."
              if r.length_overlap == 0 else f" {r.length_overlap:.0%} of the samples lie in the shared length range.")
    if not np.isfinite(r.adjusted_change):
        return f"Length control (q_proj, early layers): not estimable once log length is a covariate.{caveat}"
    return (f"Length control (q_proj, early layers): {pct(r.change)} [{pct(r.change_low)}, {pct(r.change_high)}] "
            f"before and {pct(r.adjusted_change)} [{pct(r.adjusted_low)}, {pct(r.adjusted_high)}] after regressing "
            f"out log response length.{caveat}")


VERDICT_WORDS = (
    "Every effect is the first-named condition relative to the second ('Detailed vs None': Detailed's change from "
    "None's; tests.csv and the details say it the same way). "
    "holds = significant in the claimed direction, fails = significant the other way (Holm over the whole table, "
    "α = 0.05), inconclusive otherwise; confounded = the design cannot tell the claim's contrast from a confound it "
    "names (response length by default): the two sides' lengths do not overlap, or too few pairs are near equal "
    "length, so no adjustment could separate them — what the raw effect alone would say is given beside it, as "
    "'raw: …', and it is not evidence for the claim. Where lengths do overlap, the verdict rests on the effect at "
    "equal length. 'unstable': half the prompts, drawn at random, give the same verdict in under 70% of draws.")
FLOOR = re.compile(r"floor ([0-9.e+-]+)")


def number(value: float, relative: bool) -> str:
    return pct(value) if relative else f"{value:+.3f}"


def p_words(r) -> str:
    """'Holm p = 0.012', with the design's floor named where the raw p sits on it."""
    text = f"Holm {p_text(r.p_holm)}"
    floor = FLOOR.search(str(getattr(r, "test", "")))
    if floor and np.isfinite(r.p) and r.p <= float(floor.group(1)) * 1.0001:
        text += f" (its p {float(floor.group(1)):.2g} is the floor of {int(r.n)} samples)"
    return text


def effect_text(r) -> str:
    """One row in words: the raw effect [CI], at equal length where the verdict rests on it, the summed-loss change,
    what confounds it, Holm p (its floor named), n, and its stability over random halves."""
    relative = "relative" in str(r.effect_kind)
    text = f"{number(r.effect, relative)} [{number(r.ci_low, relative)}, {number(r.ci_high, relative)}]"
    if rests_on_adjusted(getattr(r, "rests_on", "")):
        text += (f"; at equal length {pct(r.adjusted)} [{pct(r.adjusted_low)}, {pct(r.adjusted_high)}] (the "
                 "verdict's)" + ("; a curved length fit gives another verdict" if getattr(r, "sensitive", False) is True
                                 else ""))
    summed = getattr(r, "effect_summed_loss", np.nan)
    if isinstance(summed, float) and np.isfinite(summed):
        text += f"; summed-loss gradient {pct(summed)}"
    confound = getattr(r, "confounded_by", "")
    if isinstance(confound, str) and confound:
        text += f"; confounded by {confound}"
    text += f", {p_words(r)}, n = {int(r.n)}"
    stability = getattr(r, "stability", np.nan)
    if isinstance(stability, float) and np.isfinite(stability):
        text += f", same verdict in {stability:.0%} of random halves"
    return text


def shown_module(modules: pd.DataFrame):
    """The module row a summary quotes: q_proj when it has one, else the first; None when empty."""
    shown = modules[modules.module == "q_proj"]
    shown = shown if len(shown) else modules.head(1)
    return shown.iloc[0] if len(shown) else None


def counts_text(modules: pd.DataFrame) -> str:
    """'7 modules: 5 hold, 1 fails, 1 confounded' (the verdicts present)."""
    counts = modules.verdict.value_counts()
    parts = [f"{int(counts[v])} {'hold' if v == 'holds' and counts[v] > 1 else v}" for v in
             ("holds", "fails", "inconclusive", "confounded") if counts.get(v, 0)]
    return "modules: " + ", ".join(parts)


def claim_evidence(summary, modules: pd.DataFrame) -> str:
    """The numbers of one (claim, task): its own test over the mean of the modules where the kind has one (else the
    quoted module's), then the modules' verdicts."""
    if summary.verdict == "not-applicable":
        return ""
    own = np.isfinite(summary.p) if isinstance(summary.p, float) else False
    r = summary if own else shown_module(modules)
    if r is None:
        return summary.effect_kind
    head = "mean over the modules" if own else r.module
    return f"{r.effect_kind}. {head}: {effect_text(r)}. {counts_text(modules)}"


def cell_text(summary, modules: pd.DataFrame) -> str:
    """A replication cell: the summary row's own effect (else the quoted module's), then the modules' verdicts."""
    if summary.verdict == "not-applicable":
        return f"n/a: {'' if pd.isna(summary.caveats) else summary.caveats}"
    own = np.isfinite(summary.p) if isinstance(summary.p, float) else False
    r = summary if own else shown_module(modules)
    counts = counts_text(modules)
    if r is None:
        return counts
    return f"{'all modules' if own else r.module}: {effect_text(r)}; {counts}"
