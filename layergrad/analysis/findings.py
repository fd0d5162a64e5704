"""Findings in plain sentences with their numbers: per pair of conditions the early and overall
nuclear-norm changes, and the paper's hypotheses H1, H2 and H5 where the condition names allow
them to be checked."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from layergrad.analysis.curves import table_rule


def pct(value: float) -> str:
    return f"{value * 100:+.0f}%" if np.isfinite(value) else "n/a"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if np.isfinite(p) else "p n/a"


def change_sentence(row) -> str:
    verb = "raises" if row.rel_change > 0 else "lowers"
    where = {"all": "average", "early": "early-layer", "middle": "middle-layer", "late": "late-layer"}[row.unit]
    return (f"{row.b} {verb} the {where} {row.metric.replace('_', ' ')} of {row.module} by "
            f"{abs(row.rel_change) * 100:.0f}% [{row.rel_change_low * 100:+.0f}%, {row.rel_change_high * 100:+.0f}%] "
            f"relative to {row.a} ({'paired' if row.paired else 'unpaired'} {row.test}, Holm {p_text(row.p_holm)}, "
            f"n = {row.n_a}/{row.n_b}).")


def write_findings(frames, groups: list[str], pairs) -> list[dict]:
    """Plain sentences with numbers: per pair, the early and overall nuclear-norm changes,
    then the paper's hypotheses where the condition names allow them to be checked."""
    tests = frames["tests"]
    findings = []
    if tests.empty:
        return findings
    nn = tests[(tests.metric == "nuclear_norm") & tests.unit.isin(["early", "all"])]
    for a, b in pairs:
        rows = nn[(nn.a == a) & (nn.b == b)]
        if rows.empty:
            continue
        early = rows[rows.unit == "early"]
        significant = early[early.p_holm < 0.05]
        lower = int((significant.rel_change < 0).sum())
        higher = int((significant.rel_change > 0).sum())
        summary = (f"{b} vs {a}: the early-layer nuclear norm is significantly lower in {lower} and higher in "
                   f"{higher} of {len(early)} modules (Holm p < 0.05).")
        strongest = early.reindex(early.rel_change.abs().sort_values(ascending=False).index).head(3)
        details = [change_sentence(r) for r in strongest.itertuples()]
        details += length_sentence(frames["length"], a, b)
        findings.append({"title": f"{a} → {b}", "text": summary, "details": details})
    findings += hypothesis_checks(frames, groups)
    return findings


def length_sentence(length: pd.DataFrame, a: str, b: str) -> list[str]:
    """How much of the q_proj early-layer change survives regressing out log response length."""
    if length.empty or "adjusted_change" not in length:
        return []
    rows = length[(length.kind == "length-controlled") & (length.a == a) & (length.b == b)
                  & (length.metric == "nuclear_norm") & (length.segment == "early") & (length.module == "q_proj")]
    if rows.empty:
        return []
    r = rows.iloc[0]
    caveat = (" The two conditions' response lengths do not overlap, so the adjusted number extrapolates."
              if r.length_overlap == 0 else f" {r.length_overlap:.0%} of the samples lie in the shared length range.")
    if not np.isfinite(r.adjusted_change):
        return [f"Length control (q_proj, early layers): not estimable once log length is a covariate.{caveat}"]
    return [f"Length control (q_proj, early layers): {pct(r.change)} [{pct(r.change_low)}, {pct(r.change_high)}] "
            f"before and {pct(r.adjusted_change)} [{pct(r.adjusted_low)}, {pct(r.adjusted_high)}] after regressing "
            f"out log response length.{caveat}"]


def style_of(group: str) -> tuple[str, str] | None:
    """(prefix, style) for names like 'none', 'gsm8k-detailed', 'run:simplified'; None otherwise."""
    match = re.fullmatch(r"(.*?)(none|no_cot|simplified|with_cot|detailed|gpt4o)", group)
    if not match:
        return None
    style = {"no_cot": "none", "with_cot": "simplified", "gpt4o": "detailed"}.get(match.group(2), match.group(2))
    return match.group(1), style


def hypothesis_checks(frames, groups: list[str]) -> list[dict]:
    """The paper's H1 (None > Detailed, gap largest early), H2 (MAD None > Detailed), H5
    (RD between correct and irrelevant larger for Detailed than for None)."""
    tests, mad, rd = frames["tests"], frames["mad"], frames["rd"]
    styles = {}
    for g in groups:
        parsed = style_of(g)
        if parsed:
            styles.setdefault(parsed[0], {})[parsed[1]] = g
    out = []
    for prefix, found in styles.items():
        if not {"none", "detailed"} <= set(found):
            continue
        none, detailed = found["none"], found["detailed"]
        t = tests[(tests.a == none) & (tests.b == detailed) & (tests.metric == "nuclear_norm")]
        seg = t[t.unit.isin(["early", "middle", "late"])].pivot_table(index="module", columns="unit", values="rel_change")
        if not seg.empty:
            early = t[t.unit == "early"]
            lower_early = int(((early.rel_change < 0) & (early.p_holm < 0.05)).sum())
            largest_early = int(((seg["early"].abs() >= seg[["middle", "late"]].abs().max(axis=1))).sum())
            holds = lower_early == len(seg) and largest_early >= len(seg) / 2
            out.append({"title": f"H1 {prefix}none vs {prefix}detailed", "text":
                        f"{'Holds' if holds else 'Does not fully hold'}: Detailed CoT has a significantly lower "
                        f"early-layer nuclear norm than None CoT in {lower_early} of {len(seg)} modules; the relative "
                        f"gap is largest in the early layers in {largest_early} of {len(seg)} modules.",
                        "details": []})
        m = mad[(mad.metric == "nuclear_norm") & (mad.rule == table_rule(mad))]
        for segment in ("all", "early"):
            a = m[(m.group == none) & (m.segment == segment)].set_index("module")
            b = m[(m.group == detailed) & (m.segment == segment)].set_index("module").reindex(a.index)
            if a.empty:
                continue
            clear = int((a.ci_low > b.ci_high).sum())
            bigger = int((a["mad"] > b["mad"]).sum())
            out.append({"title": f"H2 MAD ({segment}) {prefix}none vs {prefix}detailed", "text":
                        f"{'Holds' if bigger == len(a) else 'Does not fully hold'}: MAD_{segment} of None CoT exceeds "
                        f"Detailed CoT's in {bigger} of {len(a)} modules ({clear} with non-overlapping 95% CIs); "
                        f"e.g. q_proj {fmt_ci(a, 'q_proj')} vs {fmt_ci(b, 'q_proj')}.", "details": []})
        irr = {s: rd[(rd.a == g) & (rd.b == f"{g}@irrelevant") & (rd.metric == "nuclear_norm")].set_index("module")
               for s, g in found.items()}
        if not irr["none"].empty and not irr["detailed"].empty:
            a, b = irr["none"], irr["detailed"].reindex(irr["none"].index)
            bigger = int((b.rd > a.rd).sum())
            out.append({"title": f"H5 correct vs irrelevant {prefix}".strip(), "text":
                        f"{'Holds' if bigger == len(a) else 'Does not fully hold'}: the relative difference between "
                        f"correct and irrelevant responses is larger for Detailed CoT than for None CoT in {bigger} of "
                        f"{len(a)} modules (q_proj: RD {rd_ci(b, 'q_proj')} vs {rd_ci(a, 'q_proj')}).", "details": []})
    return out


def fmt_ci(frame: pd.DataFrame, module: str) -> str:
    if module not in frame.index:
        return "n/a"
    r = frame.loc[module]
    return f"{r['mad']:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"


def rd_ci(frame: pd.DataFrame, module: str) -> str:
    if module not in frame.index:
        return "n/a"
    r = frame.loc[module]
    return f"{r.rd:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
