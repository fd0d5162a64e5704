"""Numbers in words, one way everywhere: a claim's effect with its CI, Holm p and n (the analysis
report, the replication report and claims.md), and per pair of conditions the significant segment
changes (one sentence each) and the rest in one line."""

from __future__ import annotations

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


def effect_text(r) -> str:
    """'-96% [-96%, -95%], Holm p < 0.001, n = 50' (relative effects) or '+0.370 [+0.200, +0.520], ...'."""
    fmt = pct if "relative" in str(r.effect_kind) else (lambda v: f"{v:+.3f}")
    text = f"{fmt(r.effect)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"
    if rests_on_adjusted(getattr(r, "rests_on", "")):
        text += f"; at equal length {pct(r.adjusted)} [{pct(r.adjusted_low)}, {pct(r.adjusted_high)}] (the verdict's)"
    return f"{text}, Holm {p_text(r.p_holm)}, n = {int(r.n)}"


def shown_module(modules: pd.DataFrame):
    """The module row a summary quotes: q_proj when it has one, else the first; None when empty."""
    shown = modules[modules.module == "q_proj"]
    shown = shown if len(shown) else modules.head(1)
    return shown.iloc[0] if len(shown) else None


def claim_evidence(summary, modules: pd.DataFrame) -> str:
    """The numbers of one (claim, task): module counts, then the q_proj (or first) module's effect."""
    if summary.verdict == "not-applicable":
        return ""
    r = shown_module(modules)
    if r is None:
        return summary.effect_kind
    relative = "relative" in str(r.effect_kind)
    return f"{summary.effect_kind}. {r.module}: {effect_text(r)}" + ("" if relative else f" ({r.effect_kind})")


def cell_text(summary, modules: pd.DataFrame) -> str:
    """A replication cell: how many modules hold, then the quoted module's effect."""
    if summary.verdict == "not-applicable":
        return f"n/a: {'' if pd.isna(summary.caveats) else summary.caveats}"
    counts = f"{int((modules.verdict == 'holds').sum())}/{len(modules)} hold"
    r = shown_module(modules)
    return counts if r is None else f"{counts}; {r.module}: {effect_text(r)}"
