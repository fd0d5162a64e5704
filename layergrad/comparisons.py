"""Which differences between conditions are real: tests, separability, length control.

- ``tests_table``: per (pair, module, layer or segment) a Wilcoxon signed-rank test when the
  same prompts appear in both conditions (paired on them), Mann-Whitney U otherwise; Holm
  correction over the whole table of a metric; rank-biserial effect size; the relative change
  of the mean with a bootstrap CI.
- ``auroc_table``: how well a sample's gradients tell condition b from a: AUROC of its mean
  metric, and of a cross-validated logistic regression on its layer x module profile.
- ``length_table``: rank correlation with response length, and the pair's difference before
  and after regressing out log length.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as st

from .analysis import interval, modules_of, segment_values

MIN_PAIRED = 5


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_index(prompts_a: pd.Series, prompts_b: pd.Series) -> list[tuple[str, str]] | None:
    """(sample_a, sample_b) ids with the same prompt, when most samples pair up; else None."""
    a = prompts_a[~prompts_a.duplicated(keep=False)]
    b = prompts_b[~prompts_b.duplicated(keep=False)]
    by_prompt = dict(zip(b.values, b.index))
    pairs = [(sid, by_prompt[p]) for sid, p in zip(a.index, a.values) if p in by_prompt]
    if len(pairs) < MIN_PAIRED or len(pairs) < 0.5 * min(len(prompts_a), len(prompts_b)):
        return None
    return pairs


def compare(x: np.ndarray, y: np.ndarray, paired: bool) -> dict:
    """Test and effect size of y vs x (rank-biserial: + means y tends to be larger)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            diff = y - x
            if np.allclose(diff, 0):
                return {"test": "wilcoxon", "statistic": np.nan, "p": 1.0, "effect": 0.0}
            res = st.wilcoxon(y, x, zero_method="wilcox")
            ranks = st.rankdata(np.abs(diff[diff != 0]))
            plus, minus = ranks[diff[diff != 0] > 0].sum(), ranks[diff[diff != 0] < 0].sum()
            return {"test": "wilcoxon", "statistic": float(res.statistic), "p": float(res.pvalue),
                    "effect": float((plus - minus) / (plus + minus))}
        res = st.mannwhitneyu(y, x, alternative="two-sided")
        return {"test": "mann-whitney", "statistic": float(res.statistic), "p": float(res.pvalue),
                "effect": float(2 * res.statistic / (len(x) * len(y)) - 1)}


def relative_change_ci(x: np.ndarray, y: np.ndarray, paired: bool, n_boot: int, rng) -> tuple[float, float, float]:
    """mean(y) / mean(x) - 1 and its bootstrap interval (pairs resampled together when paired)."""
    point = y.mean() / x.mean() - 1 if x.mean() else np.nan
    if paired:
        idx = rng.integers(0, len(x), (n_boot, len(x)))
        draws = y[idx].mean(1) / x[idx].mean(1) - 1
    else:
        draws = y[rng.integers(0, len(y), (n_boot, len(y)))].mean(1) / x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1) - 1
    lo, hi = interval(draws)
    return float(point), float(lo), float(hi)


def tests_table(matrices: dict, prompts: dict[str, pd.Series], pairs, metric: str, n_boot: int,
                seed: int) -> pd.DataFrame:
    """Every (pair, module, unit) comparison, unit = a layer or a segment (auto rule)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        for module in modules_of(matrices, a, b):
            ma, mb = matrices[(a, module)], matrices[(b, module)]
            pairing = paired_index(prompts[a].reindex(ma.index).dropna(), prompts[b].reindex(mb.index).dropna())
            units = {f"layer {int(c)}": (ma[c], mb[c]) for c in ma.columns}
            sa, sb = segment_values(ma), segment_values(mb)
            units.update({s: (sa[s], sb[s]) for s in sa.columns})
            for unit, (va, vb) in units.items():
                if pairing:
                    x = va.loc[[p[0] for p in pairing]].to_numpy()
                    y = vb.loc[[p[1] for p in pairing]].to_numpy()
                else:
                    x, y = va.to_numpy(), vb.to_numpy()
                if len(x) < 2 or len(y) < 2:
                    continue
                result = compare(x, y, bool(pairing))
                if unit.startswith("layer"):  # CIs for segments only (the findings quote those)
                    change = (float(y.mean() / x.mean() - 1) if x.mean() else np.nan, np.nan, np.nan)
                else:
                    change = relative_change_ci(x, y, bool(pairing), n_boot, rng)
                rows.append({"a": a, "b": b, "module": module, "metric": metric, "unit": unit,
                             "mean_a": float(x.mean()), "mean_b": float(y.mean()), "rel_change": change[0],
                             "rel_change_low": change[1], "rel_change_high": change[2],
                             "n_a": len(x), "n_b": len(y), "paired": bool(pairing), **result})
    table = pd.DataFrame(rows)
    if len(table):
        table["family"] = np.where(table.unit.str.startswith("layer"), table.a + "|" + table.b + "|" + table.module,
                                   "segments")
        table["p_holm"] = table.groupby("family")["p"].transform(lambda p: pd.Series(holm(p), index=p.index))
    return table


# ----------------------------------------------------------------------------- separability

def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties count half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    u = st.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u / (len(pos) * len(neg)))


def auroc_ci(labels, scores, n_boot: int, rng) -> tuple[float, float, float]:
    """AUROC and a stratified bootstrap interval."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    draws = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        draws.append(auroc(labels[idx], scores[idx]))
    lo, hi = interval(np.array(draws)) if draws else (np.nan, np.nan)
    return auroc(labels, scores), float(lo), float(hi)


def profile_scores(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of a standardised L2 logistic regression (folds keep a
    prompt's samples together, so a paired prompt never sits on both sides)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(5, np.bincount(labels).min()))
    if folds < 2:
        return np.full(len(labels), np.nan)
    out = np.full(len(labels), np.nan)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels, groups):
        if len(np.unique(labels[train])) < 2:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(features[train], labels[train])
        out[test] = model.predict_proba(features[test])[:, 1]
    return out


def auroc_table(stats: pd.DataFrame, prompts: dict[str, pd.Series], pairs, metric: str, n_boot: int,
                seed: int) -> pd.DataFrame:
    """For each pair: AUROC of (a) the mean metric over layers x modules, (b) the profile model."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        sub = stats[stats.group.isin([a, b])]
        wide = sub.pivot_table(index=["group", "sample_id"], columns=["module", "layer"], values=metric,
                               aggfunc="first").replace([np.inf, -np.inf], np.nan).dropna()
        if wide.empty:
            continue
        labels = (wide.index.get_level_values("group") == b).astype(int)
        if labels.min() == labels.max():
            continue
        values = wide.to_numpy()
        groups = np.array([prompts[g].get(s, s) for g, s in wide.index])
        mean_score = values.mean(1)
        log_features = np.log(np.clip(values, 1e-30, None)) if (values > 0).all() else values
        oof = profile_scores(log_features, labels, pd.factorize(groups)[0], seed)
        for score_name, scores in (("mean " + metric, mean_score), ("profile (logistic, CV)", oof)):
            ok = ~np.isnan(scores)
            value, lo, hi = auroc_ci(labels[ok], scores[ok], n_boot, rng)
            rows.append({"a": a, "b": b, "metric": metric, "score": score_name, "auroc": value, "ci_low": lo,
                         "ci_high": hi, "n_a": int((labels == 0).sum()), "n_b": int((labels == 1).sum())})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- length

def length_table(matrices: dict, lengths: dict[str, pd.Series], pairs, metric: str) -> pd.DataFrame:
    """Spearman correlation with response length per group, and each pair's log-scale
    difference with and without log length as a covariate (OLS, normal-theory 95% CI)."""
    rows = []
    for (group, module), matrix in matrices.items():
        seg = segment_values(matrix)
        n_resp = lengths[group].reindex(seg.index).to_numpy(dtype=float)
        for segment in ("early", "all"):
            rho, p = spearman(seg[segment].to_numpy(), n_resp)
            rows.append({"kind": "correlation", "a": group, "b": "", "module": module, "metric": metric,
                         "segment": segment, "spearman_rho": rho, "p": p, "n": len(seg)})
    for a, b in pairs:
        for module in modules_of(matrices, a, b):
            sa, sb = segment_values(matrices[(a, module)]), segment_values(matrices[(b, module)])
            la = lengths[a].reindex(sa.index).to_numpy(dtype=float)
            lb = lengths[b].reindex(sb.index).to_numpy(dtype=float)
            overlap = length_overlap(la, lb)
            for segment in ("early", "all"):
                y = np.concatenate([sa[segment].to_numpy(), sb[segment].to_numpy()])
                if (y <= 0).any():
                    continue
                is_b = np.r_[np.zeros(len(sa)), np.ones(len(sb))]
                log_len = np.log(np.maximum(np.r_[la, lb], 1))
                raw = ols_effect(np.log(y), [is_b])
                adjusted = ols_effect(np.log(y), [is_b, log_len])
                rows.append({"kind": "length-controlled", "a": a, "b": b, "module": module, "metric": metric,
                             "segment": segment, "change": np.expm1(raw[0]), "change_low": np.expm1(raw[1]),
                             "change_high": np.expm1(raw[2]), "adjusted_change": np.expm1(adjusted[0]),
                             "adjusted_low": np.expm1(adjusted[1]), "adjusted_high": np.expm1(adjusted[2]),
                             "length_overlap": overlap, "n": len(y)})
    return pd.DataFrame(rows)


def spearman(x, y) -> tuple[float, float]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan"), float("nan")
    res = st.spearmanr(x[ok], y[ok])
    return float(res.statistic), float(res.pvalue)


def length_overlap(la, lb) -> float:
    """Share of samples whose length lies in the range both conditions cover (0: disjoint)."""
    lo, hi = max(np.nanmin(la), np.nanmin(lb)), min(np.nanmax(la), np.nanmax(lb))
    both = np.r_[la, lb]
    return float(((both >= lo) & (both <= hi)).mean()) if lo <= hi else 0.0


def ols_effect(y: np.ndarray, covariates: list[np.ndarray]) -> tuple[float, float, float]:
    """Coefficient of the first covariate in y ~ 1 + covariates, with its 95% CI (NaN if singular)."""
    design = np.column_stack([np.ones(len(y)), *covariates])
    dof = len(y) - design.shape[1]
    if dof < 1 or np.linalg.matrix_rank(design) < design.shape[1]:
        return (float("nan"),) * 3
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    cov = (resid @ resid / dof) * np.linalg.inv(design.T @ design)
    half = st.t.ppf(0.975, dof) * np.sqrt(cov[1, 1])
    return float(beta[1]), float(beta[1] - half), float(beta[1] + half)
