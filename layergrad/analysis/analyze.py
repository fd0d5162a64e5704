"""``layergrad.analyze`` / ``layergrad analyze`` / ``compare``: runs -> tables, claims, figures, report.

The data flow of one analysis: the runs' groups (loading.py); per metric the per-sample layer
matrices and their curves, MAD and RD (curves.py), tests (significance.py) and length control
(length.py); separability with the loss and length baselines (separability.py); the two papers'
claims (studies/, checked by analysis/claims/) wherever the conditions' attributes fit them. ``Analysis`` holds the tables as DataFrames, draws any figure (figures.py)
and writes the output folder: CSVs, the paper's tables (tables.py) and the report (report/).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from layergrad.analysis import (claims, correlations, curves, experts, figures, length, report, separability,
                                significance, tables)
from layergrad.analysis.claims.kinds import RUN_PAIRINGS
from layergrad.analysis.derived import DERIVED_METRICS
from layergrad.analysis.loading import Loaded, across_run_pairs, computed, load_runs, within_run_pairs
from layergrad.errors import InputError
from layergrad.runs.config import DEFAULT_METRICS

FIGURE_FORMATS = ("png", "svg", "pdf")
TABLES = ("curves", "mad", "rd", "tests", "auroc", "increment", "length", "claims", "pooled", "correlations")
FIGURES = ("headline", "correlations", "experts", "length", "panels", "conditions", "irrelevant", "differences", "mad",
           "heatmap")
PER_METRIC = FIGURES[4:]  # drawn for every metric analysed (differences: the nuclear norm's only)
OPTIONAL_TABLES = ("experts",)  # written where the runs have them (MoE models)
MODULE_MEAN = "mean of modules"


@dataclass
class Analysis:
    """The result of ``layergrad.analyze``: every table as a DataFrame, figures on demand."""

    data: Loaded
    pairs: list[tuple[str, str]]
    metrics: list[str]
    curves: pd.DataFrame
    differences: pd.DataFrame  # per pair, module and layer: the relative change of the mean, its CI (in curves.csv)
    mad: pd.DataFrame
    rd: pd.DataFrame
    tests: pd.DataFrame
    auroc: pd.DataFrame
    increment: pd.DataFrame
    length: pd.DataFrame
    claims: pd.DataFrame
    pooled: pd.DataFrame  # per claim and module, the random-effects pool over its cells (claims/pooling.py)
    correlations: pd.DataFrame  # the records' numeric fields against the scores and baselines
    mean_curves: pd.DataFrame = field(repr=False)  # nuclear norm averaged over modules, per sample first
    experts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=experts.COLUMNS))  # MoE: per expert

    @property
    def groups(self) -> list[str]:
        return self.data.groups

    @property
    def irrelevant_pairs(self) -> list[tuple[str, str]]:
        """(correct, irrelevant) pairs of the same condition (by their attributes)."""
        partner_of = self.data.partners()
        return [(a, b) for a, b in self.pairs if partner_of.get(b) == a]

    def figure(self, name: str = "headline", metric: str = "nuclear_norm"):
        """A matplotlib Figure: headline | correlations | experts | length | panels | conditions | irrelevant |
        differences | mad | heatmap."""
        if name not in FIGURES:
            raise InputError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
        if name == "correlations":
            return figures.correlations(self.correlations)
        if name == "experts":
            if self.experts.empty:
                raise InputError("no MoE experts in these runs: the experts figure needs a model with experts")
            return figures.experts(self.experts, self.groups)
        if name == "length":
            return figures.length_scatter(self.data, self.groups, self.data.partners())
        if name != "headline" and metric not in self.metrics:
            raise InputError(f"metric {metric!r} was not analysed; analysed: {', '.join(self.metrics)}")
        if name == "headline":
            return figures.headline(self.mean_curves, self.groups, self.auroc, self.irrelevant_pairs,
                                    self.data.partners())
        if name == "panels":
            return figures.panels(self.curves, metric, self.groups)
        if name == "conditions":
            return figures.overlays(self.curves, metric, self.groups, self.data.partners(),
                                    title=f"{figures.label(metric)} per layer, mean with 95% bootstrap CI")
        if name == "irrelevant":
            return figures.pair_overlays(self.curves, metric, self.irrelevant_pairs, title=(
                f"Correct (solid) vs irrelevant (dashed) responses: {figures.label(metric)}, 95% CI"))
        if name == "differences":
            return figures.differences(self.differences, metric, self.pairs)
        if name == "mad":
            return figures.mad_bars(self.mad, metric, self.groups)
        return figures.heatmap(self.curves, metric, self.groups)

    def figure_list(self) -> list[tuple[str, str]]:
        """(name, metric) of every figure this analysis has, headline first."""
        names = [n for n in PER_METRIC if n != "irrelevant" or self.irrelevant_pairs]
        first = [("headline", "nuclear_norm"), ("length", "")] + \
            ([("correlations", "")] if len(self.correlations) else []) + ([("experts", "")] if len(self.experts) else [])
        return first + [(n, m) for m in self.metrics for n in names
                        if n != "differences" or (m == "nuclear_norm" and len(self.differences))]

    def write_tables(self, out: str | Path) -> Path:
        """Only the CSVs and tables/ (no figures, no report)."""
        out = make_folder(Path(out))
        for name in TABLES + tuple(t for t in OPTIONAL_TABLES if len(getattr(self, t))):
            table = getattr(self, name)
            if name == "curves":  # the conditions' curves, then each pair's per-layer change (``vs``: the reference)
                table = pd.concat([table.assign(vs=""), self.differences], ignore_index=True)
            table.to_csv(out / f"{name}.csv", index=False)
        tables.write_paper_tables(self.mad, self.groups, out / "tables")
        return out

    def write(self, out: str | Path, formats=("png",), log=print) -> Path:
        """Write the CSVs, tables/, figures/ and report.html into ``out``; return ``out``."""
        bad = [f for f in formats if f not in FIGURE_FORMATS]
        if bad:
            raise InputError(f"unknown figure format {bad[0]!r}; use {', '.join(FIGURE_FORMATS)}")
        out = self.write_tables(out)
        paths = figures.draw_all(self.figure, self.figure_list(), out / "figures", list(dict.fromkeys(["png", *formats])))
        report.write_analysis_report(out / "report.html", self, paths)
        log(f"wrote {out}/report.html, {len(paths)} figures, tables/ and {len(list(out.glob('*.csv')))} CSV files")
        return out


def analyze(runs, out: str | Path | None = None, *, metrics=DEFAULT_METRICS, n_boot: int = 1000, seed: int = 0,
            draws: int = 20, formats=("png",), across_runs: bool = False, conditions: list[str] | None = None,
            control: pd.DataFrame | None = None, claims_of: bool = True, log=print) -> Analysis:
    """Statistics, claims, figures and a report comparing the conditions of one or more runs.

    Within each run every pair of conditions is compared; the two papers' claims are checked wherever the
    conditions' attributes fit them.

    Args:
        runs: A run directory, a ``compute`` DataFrame, or a list of them.
        out: Write the CSVs, ``tables/``, ``figures/`` and ``report.html`` here (nothing written when None).
        metrics: The statistics to analyse (any registered one, ``nuclear_norm_per_loss``,
            ``nuclear_norm_summed``; the cosines are added when computed).
        n_boot: Bootstrap resamples for the confidence intervals.
        seed: Seed of the resampling (the tables are reproducible from it).
        draws: Random halves of the prompts on which the claims are judged again (each row's ``stability``; 0:
            none).
        formats: Figure formats (``png``, ``svg``, ``pdf``; the report embeds the PNGs).
        across_runs: Compare the same condition across runs instead, with the between-runs claims (each picks
            its two runs: base vs instruct, or the two in order).
        conditions: Only these conditions.
        control: The claims table of the same data under random weights, quoted in the caveats.
        claims_of: Check the claims (``reproduce`` checks its study's over all cells at once instead).
        log: Where progress lines go.

    Returns:
        An ``Analysis``: ``.claims``, ``.pooled``, ``.curves``, ``.mad``, ``.rd``, ``.tests``, ``.auroc``, ``.increment``,
        ``.length``, ``.correlations`` (and for MoE models ``.experts``, analysis/experts.py) as DataFrames;
        ``.figure(name, metric)``; ``.write(folder)``.
    """
    if out is not None and any(f not in FIGURE_FORMATS for f in formats):
        bad = next(f for f in formats if f not in FIGURE_FORMATS)
        raise InputError(f"unknown figure format {bad!r}; use {', '.join(FIGURE_FORMATS)}")
    data = load_runs(runs, conditions)
    metrics = choose_metrics(list(metrics), data.stats)
    pairs = across_run_pairs(data) if across_runs else within_run_pairs(data)
    if across_runs and not pairs:
        raise InputError("the runs share no condition name; compare needs the same conditions in each run")
    ok, stats, prompts, lengths = computed(data)
    with warnings.catch_warnings():  # empty segments and constant columns give NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        frames, analysed, matrices, auroc, increment = metric_tables(stats, ok, metrics, pairs, prompts, lengths,
                                                                     n_boot, seed, log)
        nuclear = matrices.get("nuclear_norm", {})
        claim_rows, specs = pd.DataFrame(columns=claims.COLUMNS), ()
        if claims_of:
            log(f"claims{f' and their stability over {draws} random halves' if draws else ''}")
            controls = dict(separability=auroc, increment=increment, control=control, scores=claims.baseline_scores(ok),
                            draws=draws)
            if across_runs:
                claim_rows, specs = study_claims(data, stats, matrices, prompts, lengths, n_boot, seed, **controls)
                claim_rows = pd.concat([claim_rows, between_runs(data, stats, matrices, prompts, n_boot, seed, log)],
                                       ignore_index=True)
            elif not any(data.attributes.get(g) for g in data.groups):  # the user's own conditions, nothing known
                claim_rows, specs = default_comparisons(data, stats, matrices, prompts, lengths, analysed, n_boot, seed,
                                                        **controls)
            else:
                claim_rows, specs = study_claims(data, stats, matrices, prompts, lengths, n_boot, seed, **controls)
        mean_curves = curves.curve_tables(module_means(nuclear), "nuclear_norm", n_boot, seed)[0] if nuclear \
            else pd.DataFrame(columns=["group", "module", "layer", "mean", "ci_low", "ci_high"])
        related = correlations.correlation_table(stats, ok, analysed, data.runs, n_boot, seed)
    pooled = claims.pooled_table(claim_rows, {c.id: c.sign for c in specs} | builtin_signs())
    result = Analysis(data, pairs, analysed, **frames, auroc=auroc, increment=increment, claims=claim_rows,
                      pooled=pooled, correlations=related, mean_curves=mean_curves, experts=experts.expert_table(data.experts, ok))
    if out is not None:
        result.write(out, formats, log)
    return result


CLAIM_METRICS = ("nuclear_norm", "effective_rank", "cosine_next", "cosine_pair", "cosine_next_shuffled",
                 "cosine_pair_shuffled")  # what the built-in claims read


def claim_metrics(stats: pd.DataFrame, matrices: dict, specs=()) -> dict:
    """{metric: per-sample matrices} of what the claims read (CLAIM_METRICS and the claims' own statistics),
    reusing those the analysis made."""
    wanted = list(CLAIM_METRICS) + [m for s in specs for m in s.reads]
    return {m: matrices[m] if m in matrices else curves.sample_matrices(stats, m)
            for m in dict.fromkeys(wanted) if m in stats.columns}


def study_claims(data: Loaded, stats, matrices, prompts, lengths, n_boot: int, seed: int, *, study=None,
                 **controls) -> tuple[pd.DataFrame, tuple]:
    """(the claims table, the claims) of ``study`` (default: the two papers' built-in claims) on the data's
    conditions."""
    from layergrad.studies import builtin_claims, builtin_labels

    specs = study.claims if study is not None else builtin_claims()
    labels = study.labels if study is not None else builtin_labels()
    attributes = {g: data.attributes.get(g, {}) for g in data.groups}
    return claims.claims_table(specs, attributes, claim_metrics(stats, matrices, specs), prompts, lengths, n_boot,
                               seed, labels=labels, whole=study.name if study is not None else "", **controls), specs


def builtin_signs() -> dict:
    """{claim id: its direction's sign} of the registered studies' claims (between-runs ones included)."""
    from layergrad.studies import builtin_claims

    return {c.id: c.sign for c in builtin_claims()}


SCOPES = ("early", "middle", "late")


def default_claims(pairs: list[tuple[str, str]], metrics: list[str]) -> list:
    """For conditions no study describes: each pair (a, b), each statistic, each depth third — 'B and A differ', the
    same claim machinery (two-sided test, Holm over the table, CI, length and baseline caveats); the effect is B's
    relative to A's, as tests.csv and the report's details say it."""
    from layergrad.studies.schema import ClaimSpec

    return [ClaimSpec(f"{b} vs {a}: {metric}, {scope}", f"{b} and {a} differ in {metric} over the {scope} layers",
                      statistic=metric, layers=scope, compare={"condition": [b, a]}, direction="two-sided")
            for a, b in pairs for metric in metrics for scope in SCOPES]


def default_comparisons(data: Loaded, stats, matrices, prompts, lengths, metrics, n_boot: int, seed: int,
                        **controls) -> tuple[pd.DataFrame, list]:
    """(the claims table, the claims) of ``default_claims`` on every pair of each run's conditions."""
    specs = default_claims(within_run_pairs(data), metrics)
    attributes = {g: {"condition": g} for g in data.groups}
    return claims.claims_table(specs, attributes, claim_metrics(stats, matrices, specs), prompts, lengths, n_boot,
                               seed, **controls), specs


def between_runs(data: Loaded, stats, matrices: dict, prompts: dict, n_boot: int, seed: int, log) -> pd.DataFrame:
    """Two runs: the built-in between-runs claims, each on the two runs its ``options.runs`` picks — the runs
    in the order given, or the base and the instruct model (by their chat template)."""
    from layergrad.studies import builtin_claims, builtin_labels

    if len(data.runs) != 2:
        log("the between-runs claims need exactly two runs; skipped")
        return pd.DataFrame(columns=claims.COLUMNS)
    specs, labels = builtin_claims(), builtin_labels()
    metrics = claim_metrics(stats, matrices, specs)
    parts = []
    for pairing in RUN_PAIRINGS:
        chosen = [s for s in specs if s.between_runs and s.options.runs == pairing]
        if not chosen:
            continue
        runs = run_pair(data, pairing)
        if runs is None:
            log(f"{'/'.join(s.id for s in chosen)} need one base and one instruct run; skipped")
            continue
        parts.append(claims.between_runs_table(chosen, data.of_run(runs[0]), data.of_run(runs[1]), metrics, prompts,
                                               n_boot, seed, labels=labels))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=claims.COLUMNS)


def run_pair(data: Loaded, pairing: str) -> tuple[str, str] | None:
    """(first, second) run of a pairing: as given, or (base, instruct) by the runs' chat templates."""
    if pairing == "in order":
        return tuple(data.runs)
    chat = {label: m.get("model", {}).get("chat") for label, m in data.manifests.items()}
    base = [r for r, c in chat.items() if c is False]
    instruct = [r for r, c in chat.items() if c is True]
    return (base[0], instruct[0]) if len(base) == 1 and len(instruct) == 1 else None


def make_folder(out: Path) -> Path:
    try:
        (out / "tables").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    return out


def choose_metrics(metrics: list[str], stats: pd.DataFrame) -> list[str]:
    """The asked metrics (plus cosine_next when the run has it and the defaults were asked); unknown ones rejected."""
    if metrics == list(DEFAULT_METRICS):  # the cosines of a run computed with --cosine
        metrics += [c for c in ("cosine_next", "cosine_pair") if c in stats.columns and stats[c].notna().any()]
    unknown = [m for m in metrics if m not in stats.columns]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(metric_names())}")
    return metrics


def metric_names() -> list[str]:
    """Every metric analyze knows: the registered statistics, the derived ones, the cosine."""
    from layergrad.engine import statistics

    return list(statistics.names()) + list(DERIVED_METRICS) + ["cosine_next", "cosine_pair", "cosine_next_shuffled",
                                                               "cosine_pair_shuffled"]


TABLE_JOBS = ("curves", "differences", "rd", "tests", "length")  # a metric's tables, each a job of its own


def metric_tables(stats, ok, metrics, pairs, prompts, lengths, n_boot, seed, log):
    """({table name: frame} over all metrics (curves, differences, mad, rd, tests, length), the metrics with data,
    their per-sample matrices, the separability tables (auroc, increment)): every metric's tables and every pair's
    separability, each a job of its own, spread over the cores (parallel.py); each job has its own generator, so the
    tables are the same however many cores there are."""
    from layergrad.analysis.parallel import forked_map

    matrices = {m: curves.sample_matrices(stats, m) for m in metrics}
    for metric in metrics:
        if not matrices[metric]:
            log(f"skipping {metric}: no sample has finite values (e.g. not in an imported file)")
    analysed = [m for m in metrics if matrices[m]]
    if not analysed:
        raise InputError(f"nothing to analyse: no finite values of {', '.join(metrics)}")
    matrices = {m: matrices[m] for m in analysed}
    log(f"analysing {', '.join(analysed)} and separability ({len(pairs)} comparisons)")
    jobs = [("table", name, (metrics.index(m), m)) for m in analysed for name in TABLE_JOBS]
    jobs += [("pair", None, (j, pair)) for j, pair in enumerate(pairs)]

    def run(job):
        kind, name, (i, what) = job
        if kind == "pair":
            return separability.pair_tables(stats, ok, what, analysed, min(n_boot, 500), [seed, i], seed, matrices)
        return one_table(name, matrices[what], what, pairs, prompts, lengths, n_boot, seed + i)

    found = forked_map(run, jobs)
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("curves", "differences", "mad", "rd", "tests", "length")}
    auroc_rows, increment_rows = [], []
    for (kind, _, _), result in zip(jobs, found):
        if kind == "pair":
            auroc_rows += result[0]
            increment_rows += result[1]
            continue
        for name, table in result.items():
            parts[name].append(table)
    frames = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in parts.items()}
    return (frames, analysed, matrices, pd.DataFrame(auroc_rows, columns=separability.AUROC_COLUMNS),
            pd.DataFrame(increment_rows, columns=separability.INCREMENT_COLUMNS))


def one_table(name: str, matrices: dict, metric: str, pairs, prompts, lengths, n_boot: int, seed: int) -> dict:
    """{table name: frame} of one of a metric's TABLE_JOBS (curves gives the MAD table too)."""
    if name == "curves":
        curve_rows, mad_rows = curves.curve_tables(matrices, metric, n_boot, seed)
        return {"curves": curve_rows, "mad": mad_rows}
    if name == "differences":
        return {name: significance.difference_table(matrices, pairs, prompts, metric, n_boot, seed)}
    if name == "rd":
        return {name: curves.rd_table(matrices, pairs, metric, n_boot, seed)}
    if name == "tests":
        return {name: significance.tests_table(matrices, prompts, pairs, metric, n_boot, seed)}
    return {name: length.length_table(matrices, lengths, pairs, metric)}


def module_means(matrices: dict) -> dict:
    """{(group, MODULE_MEAN): samples x layers}: per sample, the mean over its modules."""
    out = {}
    for group in dict.fromkeys(g for g, _ in matrices):
        parts = [m for (g, _), m in matrices.items() if g == group]
        shared = parts[0].index
        for m in parts[1:]:
            shared = shared.intersection(m.index)
        if len(shared) and all(m.shape[1] == parts[0].shape[1] for m in parts):
            out[(group, MODULE_MEAN)] = sum(m.loc[shared] for m in parts) / len(parts)
    return out
