"""How well a sample's numbers tell two conditions apart, and whether the gradient adds anything
beyond cheaper numbers.

Scores per pair of conditions (a, b), each an AUROC with a stratified bootstrap CI:

- baselines: the per-sample loss, the response length (tokens), the IFD when the run computed it
  (``--ifd``) and the authors' loss-normalised nuclear norm (their ``S_sum_regularized``: mean
  nuclear norm / loss);
- gradient scores: the mean of a metric over layers x modules, and a cross-validated logistic
  regression on the layer x module profile (log values when positive).

A single score's AUROC is oriented: it is at least 0.5 and ``direction`` says in which condition
the score is higher. A cross-validated model's AUROC is that of its out-of-fold P(b) (below 0.5:
worse than chance).

Incremental value: cross-validated AUROC of a logistic model on [loss, log length] (and log IFD when
the run has it) versus the same model plus the gradient profile, on the same prompt-grouped folds
(classifier.py: every column standardised over the pair's samples and penalised alike, the penalty chosen
per outer fold by an inner grouped CV), averaged over ``CV_SEEDS`` fold assignments; its CI resamples the
prompts with replacement and refits both models on every resample (``RESAMPLES``), so it spans the samples'
luck, the prompts' clustering and the folds'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis import classifier
from layergrad.analysis.curves import interval

AUROC_COLUMNS = ["a", "b", "kind", "measure", "score", "metric", "auroc", "ci_low", "ci_high", "direction", "n_a",
                 "n_b"]


@dataclass(frozen=True)
class Measure:
    """One kind of score in the AUROC table: its id (the ``measure`` column readers select by), whether it is a
    baseline or the gradient's, its words in the ``score`` column (``{metric}`` filled in) and a short name."""

    id: str
    kind: str
    words: str
    short: str

    def score(self, metric: str) -> str:
        return self.words.format(metric=metric)


MEASURES = {m.id: m for m in (
    Measure("loss", "baseline", "loss", "loss"),
    Measure("length", "baseline", "response length (tokens)", "length"),
    Measure("ifd", "baseline", "IFD", "IFD"),
    Measure("per_loss", "baseline", "mean nuclear norm / loss (S_sum_regularized)", "NN / loss"),
    Measure("mean", "gradient", "mean {metric}", "mean"),
    Measure("profile", "gradient", "{metric} profile (logistic, CV)", "profile (CV)"),
)}


def select(table: pd.DataFrame, a: str, b: str, measure: str, metric: str | None = None) -> pd.Series | None:
    """The AUROC row of one measure (and metric) for the pair a, b, or None."""
    rows = table[(table.a == a) & (table.b == b) & (table.measure == measure)] if len(table) else table
    if metric is not None and len(rows):
        rows = rows[rows.metric == metric]
    return rows.iloc[0] if len(rows) else None
INCREMENT_COLUMNS = ["a", "b", "metric", "auroc_loss_length", "auroc_with_profile", "gain", "ci_low", "ci_high", "n_a",
                     "n_b", "verdict"]
CV_SEEDS = 3  # the increment's point estimate: the cross-validation repeated with this many fold assignments
RESAMPLES = 100  # the increment's CI: prompts resampled with replacement this often, every model refitted


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties count half."""
    return float(auroc_rows(np.asarray(labels)[None], np.asarray(scores, dtype=float)[None])[0])


def auroc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every row of (B, n) labels and scores at once (Mann-Whitney U from mid-ranks)."""
    ranks = st.rankdata(scores, axis=1)
    n_pos = labels.sum(1)
    n_neg = labels.shape[1] - n_pos
    u = (ranks * labels).sum(1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def bootstrap_indices(labels: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(n_boot, n) stratified resamples: positives and negatives each drawn with replacement."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if not len(pos) or not len(neg):
        return np.zeros((0, len(labels)), dtype=int)
    return np.hstack([rng.choice(pos, (n_boot, len(pos))), rng.choice(neg, (n_boot, len(neg)))])


def auroc_draws(labels: np.ndarray, scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    return auroc_rows(labels[index], scores[index])


def auroc_ci(labels, scores, n_boot: int, rng) -> tuple[float, float, float]:
    """AUROC and a stratified bootstrap interval."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    draws = auroc_draws(labels, scores, bootstrap_indices(labels, n_boot, rng))
    lo, hi = interval(draws) if len(draws) else (np.nan, np.nan)
    return auroc(labels, scores), float(lo), float(hi)


def oriented(value: float, lo: float, hi: float, a: str, b: str) -> tuple[float, float, float, str]:
    """(AUROC >= 0.5, CI, 'higher in X'): a score lower in b separates as well as one higher in b."""
    if not np.isfinite(value) or value >= 0.5:
        return value, lo, hi, f"higher in {b}"
    return 1 - value, 1 - hi, 1 - lo, f"higher in {a}"


# ----------------------------------------------------------------------------- cross-validated models

def cv_auroc(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seeds) -> tuple[float, np.ndarray]:
    """Mean over ``seeds`` (fold assignments) of the out-of-fold AUROC of an L2 logistic model (classifier.py),
    and the penalties its outer folds chose."""
    oof, chosen = classifier.out_of_fold(features, labels, groups, list(seeds))
    aucs = [auroc(labels, row) for row in oof if np.isfinite(row).all()]
    return (float(np.mean(aucs)) if aucs else np.nan), chosen


def log_profile(values: np.ndarray) -> np.ndarray:
    """Log of a positive profile (spectral norms span decades), else the values themselves."""
    return np.log(np.clip(values, 1e-30, None)) if (values > 0).all() else values


# ----------------------------------------------------------------------------- tables

def pair_data(stats: pd.DataFrame, samples: pd.DataFrame, a: str, b: str, metric: str, matrices: dict | None = None):
    """(profile frame indexed by (group, sample_id), samples aligned to it, labels: 1 = b); from the metric's
    per-sample matrices ({(group, module): samples x layers}) where given, else from the stats."""
    wide = profiles(matrices, a, b) if matrices is not None else None
    if wide is None:
        sub = stats[stats.group.isin([a, b])]
        wide = sub.pivot_table(index=["group", "sample_id"], columns=["module", "layer"], values=metric,
                               aggfunc="first").replace([np.inf, -np.inf], np.nan).dropna()
    side = (wide.index.get_level_values("group") == b).astype(int)  # rows in (side, sample) order: the folds do
    wide = wide.iloc[np.lexsort((wide.index.get_level_values("sample_id"), side))]  # not depend on the names
    info = samples.set_index(["group", "sample_id"]).reindex(wide.index)
    keep = info.loss.notna().to_numpy() & np.isfinite(info.loss.to_numpy(dtype=float))
    wide, info = wide[keep], info[keep]
    labels = (wide.index.get_level_values("group") == b).astype(int)
    return wide, info, np.asarray(labels)


def profiles(matrices: dict, a: str, b: str) -> pd.DataFrame | None:
    """The (module, layer) profiles of both groups' samples that have every one, as the stats' pivot gives them
    (modules in name order); None where the two groups' modules or layers differ."""
    modules = sorted(m for (g, m) in matrices if g == a and (b, m) in matrices)
    if not modules or any(list(matrices[(a, m)].columns) != list(matrices[(b, m)].columns) for m in modules):
        return None
    parts = []
    for group in (a, b):
        wide = pd.concat([matrices[(group, m)] for m in modules], axis=1, keys=modules, names=["module", "layer"],
                         join="inner")
        parts.append(wide.set_axis(pd.MultiIndex.from_product([[group], wide.index], names=["group", "sample_id"])))
    return pd.concat(parts).dropna()


def score_row(a, b, measure, metric, labels, values, n_boot, rng, orient=True) -> dict:
    ok = np.isfinite(values)
    value, lo, hi = auroc_ci(labels[ok], values[ok], n_boot, rng)
    if orient:
        value, lo, hi, direction = oriented(value, lo, hi, a, b)
    else:
        direction = f"cross-validated P({b})"
    m = MEASURES[measure]
    return {"a": a, "b": b, "kind": m.kind, "measure": measure, "score": m.score(metric), "metric": metric,
            "auroc": value, "ci_low": lo,
            "ci_high": hi, "direction": direction, "n_a": int((labels[ok] == 0).sum()),
            "n_b": int((labels[ok] == 1).sum())}


def separability_tables(stats: pd.DataFrame, samples: pd.DataFrame, pairs, metrics: list[str], n_boot: int,
                        seed: int, matrices: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(auroc, increment): every score of every pair, and each metric's profile's value beyond loss and length; the
    pairs spread over the cores (parallel.py), each with its own generator (the same tables however many);
    ``matrices``: {metric: per-sample matrices} the analysis made (else the stats are pivoted again)."""
    from layergrad.analysis.parallel import forked_map

    found = forked_map(lambda job: pair_tables(stats, samples, job[1], metrics, n_boot, [seed, job[0]], seed,
                                               matrices), list(enumerate(pairs)))
    rows = [r for pair_rows, _ in found for r in pair_rows]
    increments = [r for _, pair_increments in found for r in pair_increments]
    return pd.DataFrame(rows, columns=AUROC_COLUMNS), pd.DataFrame(increments, columns=INCREMENT_COLUMNS)


def pair_tables(stats: pd.DataFrame, samples: pd.DataFrame, pair: tuple[str, str], metrics: list[str], n_boot: int,
                rng_seed, seed: int, matrices: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(auroc rows, increment rows) of one pair: the baselines once, every metric's mean and profile, each profile's
    increment; ``rng_seed`` seeds the pair's bootstrap, ``seed`` its cross-validation."""
    rng = np.random.default_rng(rng_seed)
    a, b = pair
    rows, by_rows = [], {}  # the metrics whose profiles cover the same samples share the baseline's fits
    for metric in metrics:
        wide, info, labels = pair_data(stats, samples, a, b, metric, None if matrices is None else matrices.get(metric))
        if wide.empty or labels.min() == labels.max():
            continue
        values = wide.to_numpy()
        groups = pd.factorize(np.asarray(info.prompt.fillna("")))[0]
        ifd = ifd_values(info)
        if not rows:
            loss, length = info.loss.to_numpy(dtype=float), info.n_response_tokens.to_numpy(dtype=float)
            rows.append(score_row(a, b, "loss", "", labels, loss, n_boot, rng))
            rows.append(score_row(a, b, "length", "", labels, length, n_boot, rng))
            if ifd is not None:
                rows.append(score_row(a, b, "ifd", "", labels, ifd, n_boot, rng))
        if metric == "nuclear_norm":
            rows.append(score_row(a, b, "per_loss", metric, labels, values.mean(1) / info.loss.to_numpy(dtype=float),
                                  n_boot, rng))
        rows.append(score_row(a, b, "mean", metric, labels, values.mean(1), n_boot, rng))
        profile = log_profile(values)
        oof = classifier.out_of_fold(profile, labels, groups, [seed])[0][0]
        rows.append(score_row(a, b, "profile", metric, labels, oof, n_boot, rng, orient=False))
        columns = [info.loss.to_numpy(dtype=float), np.log(np.maximum(info.n_response_tokens.to_numpy(dtype=float), 1))]
        if ifd is not None:
            columns.append(np.log(np.nan_to_num(ifd, nan=np.nanmedian(ifd)).clip(1e-6)))
        entry = by_rows.setdefault(tuple(wide.index), (np.column_stack(columns), labels, groups, ifd is not None, {}))
        entry[-1][metric] = profile
    increments = []
    for base, labels, groups, with_ifd, profiles in by_rows.values():
        increments += increment_rows(a, b, base, profiles, labels, groups, seed, with_ifd=with_ifd)
    return rows, sorted(increments, key=lambda r: metrics.index(r["metric"]))


def ifd_values(info: pd.DataFrame) -> np.ndarray | None:
    """The samples' IFD when the run computed it for most of them (else None)."""
    if "ifd" not in info.columns:
        return None
    values = info.ifd.to_numpy(dtype=float)
    return values if np.isfinite(values).mean() >= 0.5 else None


def increment_rows(a, b, base: np.ndarray, profiles: dict, labels, groups, seed: int, *, with_ifd: bool = False,
                   resamples: int = RESAMPLES) -> list[dict]:
    """Per profile: the CV AUROC of the baselines ([loss, log length(, log IFD)]) and of them plus the profile (every
    column standardised and penalised alike, the penalty chosen per outer fold by an inner CV), averaged over
    ``CV_SEEDS`` fold assignments; the gain's CI from ``resamples`` bootstrap resamples of the prompts, each
    refitted on its own folds (at the penalty the outer folds chose most often) — the CI spans the samples' luck,
    the prompts' clustering and the folds'. The baseline's fits are shared by the profiles."""
    seeds = range(seed, seed + CV_SEEDS)
    base_auc, base_c = cv_auroc(base, labels, groups, seeds)
    models, penalties, points = [base], [classifier.typical_penalty(base_c)], []
    for profile in profiles.values():
        full = np.column_stack([base, profile])
        full_auc, full_c = cv_auroc(full, labels, groups, seeds)
        models.append(full)
        penalties.append(classifier.typical_penalty(full_c))
        points.append(full_auc)
    draws = classifier.resampled_aurocs(models, labels, groups, resamples, np.random.default_rng(seed), penalties)
    rows = []
    for (metric, _), full_auc, resampled in zip(profiles.items(), points, draws[1:]):
        gain = full_auc - base_auc
        lo, hi = interval(resampled - draws[0]) if np.isfinite(resampled - draws[0]).any() else (np.nan, np.nan)
        rows.append({"a": a, "b": b, "metric": metric, "auroc_loss_length": base_auc, "auroc_with_profile": full_auc,
                     "gain": gain, "ci_low": float(lo), "ci_high": float(hi), "n_a": int((labels == 0).sum()),
                     "n_b": int((labels == 1).sum()), "verdict": increment_verdict(gain, lo, hi, with_ifd, metric)})
    return rows


def increment_verdict(gain: float, lo: float, hi: float, with_ifd: bool = False, metric: str = "") -> str:
    """The sentence the report prints for one pair and profile."""
    beyond = "loss, length and IFD" if with_ifd else "loss and length"
    profile = f"the {metric.replace('_', ' ')} profile" if metric else "the gradient profile"
    if not np.isfinite(gain):
        return f"{profile}: not estimable (too few samples per class)"
    if lo > 0:
        return f"{profile} adds {gain:+.2f} [{lo:+.2f}, {hi:+.2f}] AUROC beyond {beyond}"
    return f"{profile} adds nothing detectable beyond {beyond} ({gain:+.2f} [{lo:+.2f}, {hi:+.2f}])"
