"""Cross-validated L2-penalised logistic regression, thousands of fits at once: the classifier behind the
separability scores (the profile's AUROC and its increment beyond loss and length).

Every fit of one pair of conditions shares the feature matrix X (n samples x p features, standardised over
all n samples: no label is used) and differs only in its sample weights — 0 outside the training fold, a
prompt's multiplicity in a bootstrap resample. A fit minimises sklearn's ``LogisticRegression(C=c)``
objective (lbfgs: the intercept is not penalised), C * sum_i w_i log-loss_i + |beta|^2 / 2, by Newton's
method in the dual: beta = X^T a, so each step solves an (n + 1) x (n + 1) system however many features
there are (a profile has layers x modules of them, a pair a few dozen samples), and a whole batch of fits
is one batched solve.

Folds keep a prompt's samples together (a prompt is a *group*) and are stratified by the groups' labels.
"""

from __future__ import annotations

import numpy as np

C_GRID = (0.01, 0.1, 1.0)  # the penalties an inner cross-validation chooses from (ties: the stronger)
FOLDS = 5
INNER_FOLDS = 3
MAX_NEWTON = 50
TOLERANCE = 1e-4  # Newton stops once no fit's decision values move by more than this: the error the last step
# leaves is of the order of its square (Newton converges quadratically)


def standardised(features: np.ndarray) -> np.ndarray:
    """Every column to mean 0 and scale 1 over all samples (a constant column to 0)."""
    scale = features.std(0)
    return (features - features.mean(0)) / np.where(scale > 0, scale, 1.0)


def fit_decisions(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, c) -> np.ndarray:
    """Decision values x beta + b at every sample for each fit: ``features`` (n, p) standardised, ``labels`` 0/1
    (n,), ``weights`` (B, n) per fit, ``c`` the penalty of each fit (B,) or one for all. Returns (B, n).
    Newton's method on beta itself where there are fewer features than training samples, else in the dual
    (beta = X^T a) on each fit's samples of non-zero weight alone."""
    weights = np.asarray(weights, dtype=float)
    lam = 1.0 / np.broadcast_to(np.asarray(c, dtype=float), (len(weights),))
    out = np.full((len(weights), len(labels)), np.nan)  # a fit with no sample (a fold that left none): NaN
    fit = (weights > 0).any(1)
    if not fit.any():
        return out
    weights, lam = weights[fit], lam[fit]
    solve = _primal if features.shape[1] < (weights > 0).sum(1).max() else _dual
    out[fit] = solve(features, labels, weights, lam)
    return out


def _start(labels, weights) -> np.ndarray:
    """The intercept of a model with no features: the log-odds of the weighted labels."""
    share = np.clip((weights @ labels) / np.maximum(weights.sum(1), 1e-300), 1e-6, 1 - 1e-6)
    return np.log(share / (1 - share))


def _primal(x, labels, weights, lam) -> np.ndarray:
    fits, (n, k) = len(weights), x.shape
    xb = np.column_stack([x, np.ones(n)])  # the last coefficient is the intercept, unpenalised
    penalty = np.diag(np.r_[np.ones(k), 0.0])
    coef = np.zeros((fits, k + 1))
    coef[:, k] = _start(labels, weights)
    for _ in range(MAX_NEWTON):
        f = coef @ xb.T
        p = 1 / (1 + np.exp(-f))
        g, h = weights * (p - labels), weights * np.maximum(p * (1 - p), 1e-12)
        hessian = np.matmul((h[:, :, None] * xb).transpose(0, 2, 1), xb) + lam[:, None, None] * penalty
        gradient = g @ xb + lam[:, None] * coef * np.r_[np.ones(k), 0.0]
        step = np.linalg.solve(hessian, -gradient[..., None])[..., 0]
        coef += step
        if np.abs(step @ xb.T).max() < TOLERANCE:
            break
    return coef @ xb.T


def _dual(x, labels, weights, lam) -> np.ndarray:
    gram = x @ x.T
    a, b = _dual_fit(gram, labels, weights, lam)
    return a @ gram + b[:, None]


def _dual_fit(gram, labels, weights, lam) -> tuple[np.ndarray, np.ndarray]:
    """(a over every sample, b) of each fit (beta = X^T a): Newton from a = 0 and the labels' log-odds, on each fit's
    samples of non-zero weight, padded with weight-0 entries (inert: their a stays 0); a fit leaves the batch once
    it has converged."""
    fits, n = weights.shape
    size = max(int((weights > 0).sum(1).max()), 1)
    order = np.argsort(weights <= 0, axis=1, kind="stable")[:, :size]
    w = np.take_along_axis(weights, order, 1)
    y = labels[order]
    sub = gram[order[:, :, None], order[:, None, :]]
    a, b = np.zeros((fits, size)), _start(labels, weights)
    eye = np.eye(size)
    active = np.arange(fits)
    for _ in range(MAX_NEWTON):
        s_, w_, y_, a_, lam_ = sub[active], w[active], y[active], a[active], lam[active]
        p = 1 / (1 + np.exp(-(times(a_, s_) + b[active, None])))
        g, h = w_ * (p - y_), w_ * np.maximum(p * (1 - p), 1e-12)  # a saturated p leaves the step solvable
        system = np.empty((len(active), size + 1, size + 1))
        system[:, :size, :size] = h[:, :, None] * s_ + lam_[:, None, None] * eye
        system[:, :size, size] = h
        system[:, size, :size] = times(h, s_)
        system[:, size, size] = h.sum(1)
        rhs = -np.concatenate([g + lam_[:, None] * a_, g.sum(1, keepdims=True)], axis=1)
        step = np.linalg.solve(system, rhs[..., None])[..., 0]
        a[active] += step[:, :size]
        b[active] += step[:, size]
        moved = np.abs(times(step[:, :size], s_) + step[:, size:]).max(1)
        active = active[moved >= TOLERANCE]
        if not len(active):
            break
    out = np.zeros((fits, n))
    np.put_along_axis(out, order, a * (w > 0), 1)
    return out, b


def times(vectors: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(B, m) x (B, m, k) -> (B, k), one matrix product each (batched BLAS)."""
    return np.matmul(vectors[:, None, :], matrices)[:, 0]


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B, n) scores with (B, n) sample weights (a resample's multiplicities; 0 = not in
    it): P(score of a positive > score of a negative), ties half. NaN where a row lacks a class."""
    positive = weights * labels
    negative = weights * (1 - labels)
    above = (scores[:, :, None] > scores[:, None, :]) + 0.5 * (scores[:, :, None] == scores[:, None, :])
    pairs = np.einsum("bi,bij,bj->b", positive, above, negative)
    total = positive.sum(1) * negative.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pairs / total, np.nan)


def assign_folds(labels: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator,
                 present: np.ndarray | None = None) -> np.ndarray:
    """A fold (0..k-1) per sample, -1 where not ``present``: whole groups, shuffled, then dealt in the order of
    their share of label 1 so that every fold gets its part of each class."""
    present = np.ones(len(labels), bool) if present is None else present
    ids, index = np.unique(groups, return_inverse=True)
    size = np.bincount(index, weights=present, minlength=len(ids))
    share = np.bincount(index, weights=present * labels, minlength=len(ids)) / np.maximum(size, 1)
    there = np.flatnonzero(size > 0)
    order = there[rng.permutation(len(there))]
    order = order[np.argsort(share[order], kind="stable")]
    fold_of = np.full(len(ids), -1)
    fold_of[order] = np.arange(len(order)) % k
    return np.where(present, fold_of[index], -1)


def n_folds(labels: np.ndarray, groups: np.ndarray, wanted: int) -> int:
    """How many folds the samples allow (each class and each fold at least one group); < 2: no CV."""
    per_class = [len(np.unique(groups[labels == v])) for v in (0, 1)]
    return int(min(wanted, *per_class, len(np.unique(groups))))


def training_weights(folds: np.ndarray, k: int, base: np.ndarray) -> np.ndarray:
    """(k, n): each fold's training weights — ``base`` outside the fold, 0 inside it and where not present."""
    return np.stack([np.where((folds != f) & (folds >= 0), base, 0.0) for f in range(k)])


def inner_choice(x, labels, groups, outer: np.ndarray, rng, grid) -> np.ndarray:
    """The penalty of ``grid`` with the best mean inner-CV AUROC for each outer training set (rows of ``outer``:
    0/1 weights), chosen on grouped inner folds of that set alone (ties: the stronger penalty)."""
    if len(grid) == 1:
        return np.full(len(outer), grid[0])
    plans = []
    for train in outer:
        inside = train > 0
        k = n_folds(labels[inside], groups[inside], INNER_FOLDS)
        folds = assign_folds(labels, groups, k, rng, inside) if k >= 2 else np.full(len(labels), -1)
        plans.append((k, folds))
    weights, cs, owner = [], [], []
    for i, (k, folds) in enumerate(plans):
        for c in grid:
            for f in range(k):
                weights.append(np.where((folds != f) & (folds >= 0), 1.0, 0.0))
                cs.append(c)
                owner.append((i, c, f))
    if not weights:
        return np.full(len(outer), grid[-1])
    decisions = fit_decisions(x, labels, np.array(weights), np.array(cs))
    held = np.array([plans[i][1] == f for i, _, f in owner], dtype=float)
    both = (held @ labels > 0) & (held @ (1 - labels) > 0)
    aucs = weighted_auroc(np.broadcast_to(labels, held.shape), decisions, held)
    scores = {}
    for (i, c, _), auc, ok in zip(owner, aucs, both):
        if ok:
            scores.setdefault((i, c), []).append(auc)
    chosen = []
    for i in range(len(outer)):
        means = [np.mean(scores[(i, c)]) if scores.get((i, c)) else -np.inf for c in grid]
        chosen.append(grid[int(np.argmax(means))] if np.isfinite(max(means)) else grid[-1])
    return np.array(chosen)


def out_of_fold(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seeds, *, grid=None,
                folds: int = FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """(len(seeds), n) out-of-fold P(label 1) (logit scale: the AUROC needs only the order), one fold assignment
    per seed, the penalty chosen per outer fold by an inner CV of its training set; and the penalties chosen.
    NaN rows where the samples allow no CV."""
    grid = grid or C_GRID
    x = standardised(features)
    n = len(labels)
    k = n_folds(labels, groups, folds)
    out = np.full((len(seeds), n), np.nan)
    if k < 2:
        return out, np.array([])
    assignments = [assign_folds(labels, groups, k, np.random.default_rng(seed)) for seed in seeds]
    outer = np.concatenate([training_weights(f, k, np.ones(n)) for f in assignments])
    chosen = inner_choice(x, labels, groups, outer, np.random.default_rng(int(seeds[0]) + 10_000), grid)
    decisions = fit_decisions(x, labels, outer, chosen)
    for s, fold_of in enumerate(assignments):
        for f in range(k):
            held = fold_of == f
            out[s, held] = decisions[s * k + f, held]
    return out, chosen


def resampled_aurocs(models: list[np.ndarray], labels, groups, resamples: int, rng, penalties,
                    folds: int = FOLDS) -> np.ndarray:
    """(len(models), resamples) CV AUROC of each feature matrix on the same bootstrap resamples of the groups
    (prompts drawn with replacement, their samples weighted by the draw count), each resample refitted on its
    own grouped folds at the model's penalty. NaN for a resample without enough of both classes."""
    ids, index = np.unique(groups, return_inverse=True)
    weights, plans, kept = [], [], []
    for r in range(resamples):
        w = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids)).astype(float)[index]
        present = w > 0
        k = n_folds(labels[present], groups[present], folds)
        if k < 2:
            continue
        fold_of = assign_folds(labels, groups, k, rng, present)
        weights.append(training_weights(fold_of, k, w))
        plans.append((fold_of, w, k))
        kept.append(r)
    out = np.full((len(models), resamples), np.nan)
    if not plans:
        return out
    stacked = np.concatenate(weights)
    w = np.array([p[1] for p in plans])
    for m, (features, c) in enumerate(zip(models, penalties)):
        decisions = fit_decisions(standardised(features), labels, stacked, c)
        oof, row = np.zeros(w.shape), 0
        for r, (fold_of, _, k) in enumerate(plans):
            for f in range(k):
                held = fold_of == f
                oof[r, held] = decisions[row + f, held]
            row += k
        out[m, kept] = weighted_auroc(np.broadcast_to(labels, w.shape), oof, w)
    return out


def typical_penalty(chosen: np.ndarray) -> float:
    """The penalty the outer folds chose most often (ties: the stronger), for the resamples' refits."""
    grid = C_GRID
    if not len(chosen):
        return grid[-1]
    counts = [(chosen == c).sum() for c in grid]
    return grid[int(np.argmax(counts))]
