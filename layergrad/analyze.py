"""``layergrad analyze`` / ``compare``: runs -> CSV tables, figures, paper tables, HTML report.

A *group* is one condition of one run (named ``condition``, or ``run:condition`` when
several runs are analysed). ``analyze`` compares the conditions of each run with each
other; ``compare`` compares the same condition across runs (the model is the factor).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, comparisons, figures
from .errors import InputError
from .store import load_run

DEFAULT_METRICS = ("nuclear_norm", "sigma1_ratio", "effective_rank")
FIGURE_FORMATS = ("png", "svg", "pdf")


@dataclass
class Loaded:
    """Stats and samples of every run, with a ``group`` column; groups in run order."""

    stats: pd.DataFrame
    samples: pd.DataFrame
    groups: list[str]
    manifests: dict[str, dict]
    runs: dict[str, list[str]] = field(default_factory=dict)  # run label -> its groups


def load_runs(paths: list[str]) -> Loaded:
    labels = run_labels(paths)
    stats, samples, manifests, runs, groups = [], [], {}, {}, []
    for path, run_label in zip(paths, labels):
        s, m, manifest = load_run(path)
        order = list(manifest.get("config", {}).get("data", {})) or list(dict.fromkeys(m.condition))
        order = [c for c in order if c in set(s.condition)] + sorted(set(s.condition) - set(order))
        name = (lambda c: c) if len(paths) == 1 else (lambda c, r=run_label: f"{r}:{c}")
        s = s.assign(group=s.condition.map(name), run=run_label)
        m = m.assign(group=m.condition.map(name), run=run_label)
        stats.append(s)
        samples.append(m)
        manifests[run_label] = manifest
        runs[run_label] = [name(c) for c in order]
        groups += runs[run_label]
    stats = pd.concat(stats, ignore_index=True)
    if stats.empty:
        raise InputError(f"no statistics in {', '.join(paths)}: nothing was computed")
    return Loaded(stats, pd.concat(samples, ignore_index=True), groups, manifests, runs)


def run_labels(paths: list[str]) -> list[str]:
    names = [Path(p).resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names, 1)]


def within_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """X vs X@irrelevant first (the paper's correct vs irrelevant), then every other pair in run order."""
    pairs = []
    for groups in data.runs.values():
        irrelevant = [(g, f"{g}@irrelevant") for g in groups if f"{g}@irrelevant" in groups]
        rest = [p for p in combinations(groups, 2) if p not in irrelevant]
        pairs += irrelevant + rest
    return pairs


def across_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """The same condition in every two runs."""
    pairs = []
    for (ra, ga), (rb, gb) in combinations(data.runs.items(), 2):
        conditions_b = {g.split(":", 1)[1]: g for g in gb}
        pairs += [(g, conditions_b[g.split(":", 1)[1]]) for g in ga if g.split(":", 1)[1] in conditions_b]
    return pairs


# ----------------------------------------------------------------------------- main

def analyze(paths: list[str], out: str | Path, *, metrics=DEFAULT_METRICS, n_boot: int = 1000, seed: int = 0,
            formats=("png", "svg"), across_runs: bool = False, log=print) -> Path:
    """Write every table, figure and the report for ``paths`` into ``out``; return ``out``."""
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise InputError(f"unknown figure format {bad[0]!r}; use {', '.join(FIGURE_FORMATS)}")
    data = load_runs(paths)
    out = Path(out)
    try:
        (out / "tables").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    metrics = list(metrics)
    if (metrics == list(DEFAULT_METRICS) and "cosine_next" in data.stats.columns
            and data.stats.cosine_next.notna().any()):
        metrics.append("cosine_next")  # the run was computed with --cosine
    unknown = [m for m in metrics if m not in data.stats.columns]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(DEFAULT_METRICS)}, "
                         "frobenius_norm, stable_rank, sigma_max")
    pairs = across_run_pairs(data) if across_runs else within_run_pairs(data)
    if across_runs and not pairs:
        raise InputError("the runs share no condition name; compare needs the same conditions in each run")
    ok = data.samples[data.samples.status == "ok"]
    prompts = {g: rows.set_index("sample_id")["prompt"] for g, rows in ok.groupby("group")}
    lengths = {g: rows.set_index("sample_id")["n_response_tokens"] for g, rows in ok.groupby("group")}
    stats = data.stats[data.stats.sample_id.isin(set(ok.sample_id))]
    with warnings.catch_warnings():  # empty segments and constant columns give NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        frames, analysed = metric_tables(stats, metrics, pairs, prompts, lengths, n_boot, seed, log)
    if not analysed:
        raise InputError(f"nothing to analyse: no finite values of {', '.join(metrics)} in {', '.join(paths)}")
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    write_paper_tables(frames["mad"], data.groups, out / "tables")
    figure_paths = draw_figures(frames, data, pairs, analysed, out / "figures", formats)
    findings = write_findings(frames, data, pairs)
    from .report import write_report

    write_report(out / "report.html", data=data, frames=frames, findings=findings, figures=figure_paths,
                 pairs=pairs)
    log(f"wrote {out}/report.html, {len(figure_paths)} figures, tables/ and 6 CSV files")
    return out


def metric_tables(stats, metrics, pairs, prompts, lengths, n_boot, seed, log) -> tuple[dict, list[str]]:
    """{table name: frame} over all metrics, and the metrics that had data."""
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("curves", "mad", "rd", "tests", "auroc", "length")}
    analysed = []
    for i, metric in enumerate(metrics):
        matrices = analysis.sample_matrices(stats, metric)
        if not matrices:
            log(f"skipping {metric}: no sample has finite values (e.g. not in an imported file)")
            continue
        analysed.append(metric)
        log(f"analysing {metric} ({len({g for g, _ in matrices})} conditions, {len(pairs)} comparisons)")
        curves, mad = analysis.curve_tables(matrices, metric, n_boot, seed + i)
        tables["curves"].append(curves)
        tables["mad"].append(mad)
        tables["rd"].append(analysis.rd_table(matrices, pairs, metric, n_boot, seed + i))
        tables["tests"].append(comparisons.tests_table(matrices, prompts, pairs, metric, n_boot, seed + i))
        tables["auroc"].append(comparisons.auroc_table(stats, prompts, pairs, metric, min(n_boot, 500), seed + i))
        tables["length"].append(comparisons.length_table(matrices, lengths, pairs, metric))
    return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in tables.items()}, analysed


def draw_figures(frames, data: Loaded, pairs, metrics, out: Path, formats) -> list[Path]:
    curves, mad = frames["curves"], frames["mad"]
    paths = []
    for metric in metrics:
        paths += figures.panels(curves, metric, data.groups, out, formats)
        paths += figures.overlays(curves, metric, data.groups, out, formats, name=f"conditions_{metric}",
                                  title=f"{figures.label(metric)} per layer, mean with 95% bootstrap CI")
        irrelevant = [(a, b) for a, b in pairs if b == f"{a}@irrelevant"]
        if irrelevant:
            paths += figures.pair_overlays(curves, metric, irrelevant, out, formats, name=f"irrelevant_{metric}",
                                           title=f"Correct (solid) vs irrelevant (dashed) responses: "
                                                 f"{figures.label(metric)}, 95% CI")
        paths += figures.mad_bars(mad, metric, data.groups, out, formats)
        paths += figures.heatmap(curves, metric, data.groups, out, formats)
    return paths


def paper_table(mad: pd.DataFrame, groups: list[str], metric: str) -> pd.DataFrame:
    """Rows conditions, columns (module, segment): the paper's MAD table (its rule if it has one)."""
    data = mad[mad.metric == metric]
    data = data[data.rule == analysis.table_rule(data)]
    wide = data.pivot_table(index="group", columns=["module", "segment"], values="mad", sort=False)
    order = [g for g in groups if g in wide.index]
    segments = [s for s in analysis.SEGMENTS if s in wide.columns.get_level_values(1)]
    modules = list(dict.fromkeys(data.module))
    return wide.reindex(index=order, columns=pd.MultiIndex.from_product([modules, segments]))


def write_paper_tables(mad: pd.DataFrame, groups: list[str], out: Path) -> None:
    for metric in mad.metric.unique():
        table = paper_table(mad, groups, metric)
        flat = table.copy()
        flat.columns = [f"{m} {s}" for m, s in table.columns]
        flat.to_csv(out / f"mad_{metric}.csv", float_format="%.6g")
        (out / f"mad_{metric}.md").write_text(markdown_table(flat), encoding="utf-8")
        latex = table.style.format("{:.3g}", na_rep="--").format_index(escape="latex", axis=0) \
            .format_index(escape="latex", axis=1).to_latex(hrules=True, multicol_align="c")
        (out / f"mad_{metric}.tex").write_text(latex, encoding="utf-8")


def markdown_table(frame: pd.DataFrame) -> str:
    head = "| condition | " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|---|" + "---:|" * len(frame.columns)
    body = ["| " + " | ".join([str(idx).replace("|", "\\|")] + [f"{v:.3g}" if pd.notna(v) else "--" for v in row])
            + " |" for idx, row in zip(frame.index, frame.to_numpy())]
    return "\n".join([head, rule, *body]) + "\n"


# ----------------------------------------------------------------------------- findings

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


def write_findings(frames, data: Loaded, pairs) -> list[dict]:
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
    findings += hypothesis_checks(frames, data)
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


def hypothesis_checks(frames, data: Loaded) -> list[dict]:
    """The paper's H1 (None > Detailed, gap largest early), H2 (MAD None > Detailed), H5
    (RD between correct and irrelevant larger for Detailed than for None)."""
    tests, mad, rd = frames["tests"], frames["mad"], frames["rd"]
    styles = {}
    for g in data.groups:
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
        m = mad[(mad.metric == "nuclear_norm") & (mad.rule == analysis.table_rule(mad))]
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
