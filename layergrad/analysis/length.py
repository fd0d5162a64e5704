"""Length control: rank correlation of a metric with response length, and each pair's
difference before and after regressing out log length (with the share of samples in the
length range both conditions cover)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.curves import modules_of, segment_values


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
