"""How well a sample's gradients tell two conditions apart: AUROC of the mean metric and of a
cross-validated logistic regression on the layer x module profile (prompt-grouped folds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.curves import interval


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
