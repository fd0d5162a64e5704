"""Controls: loss and length baselines, oriented AUROC, the profile's value beyond them, derived
metrics, and the Python analysis API."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import layergrad
from layergrad.analysis import classifier
from layergrad.analysis import separability as sep


def synthetic_run(loss_a, loss_b, len_a, len_b, nn_a, nn_b):
    """stats + samples of two groups 'a' and 'b' with 1 module x 2 layers (nn given per sample)."""
    stats, samples = [], []
    for group, losses, lengths, nns in (("a", loss_a, len_a, nn_a), ("b", loss_b, len_b, nn_b)):
        for i, (loss, length, nn) in enumerate(zip(losses, lengths, nns)):
            sid = f"{group}{i}"
            samples.append({"group": group, "sample_id": sid, "loss": loss, "n_response_tokens": length,
                            "prompt": f"prompt {group}{i}"})
            for layer in range(2):
                stats.append({"group": group, "sample_id": sid, "module": "q_proj", "layer": layer,
                              "nuclear_norm": nn * (1 + layer)})
    return pd.DataFrame(stats), pd.DataFrame(samples)


def scores(table, name):
    return table[table.score == name].iloc[0]


def test_baselines_by_hand():
    stats, samples = synthetic_run(loss_a=[1.0, 2.0, 3.0], loss_b=[4.0, 5.0, 6.0], len_a=[1, 2, 3], len_b=[2, 3, 4],
                                   nn_a=[6.0, 5.0, 4.0], nn_b=[3.0, 2.0, 1.0])
    auroc, _ = sep.separability_tables(stats, samples, [("a", "b")], ["nuclear_norm"], 200, 0)
    loss = scores(auroc, "loss")
    assert loss.auroc == 1.0 and loss.direction == "higher in b" and (loss.ci_low, loss.ci_high) == (1.0, 1.0)
    length = scores(auroc, "response length (tokens)")  # U = 1.5 + 2.5 + 3 of 9 pairs
    assert length.auroc == pytest.approx(7 / 9) and length.direction == "higher in b"
    nn = scores(auroc, "mean nuclear_norm")  # perfectly lower in b: oriented, never 0.00
    assert nn.auroc == 1.0 and nn.direction == "higher in a" and nn.ci_low == 1.0
    ratio = scores(auroc, "mean nuclear norm / loss (S_sum_regularized)")  # (1.5 nn) / loss: 9, 3.75, 2 vs 1.125, 0.6, 0.25
    assert ratio.auroc == 1.0 and ratio.direction == "higher in a"
    assert set(auroc.kind) == {"baseline", "gradient"}


def test_auroc_rows_equal_sklearn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, (20, 30))
    labels[:, 0], labels[:, 1] = 0, 1
    values = rng.integers(0, 5, (20, 30)).astype(float)  # many ties
    expected = [roc_auc_score(y, s) for y, s in zip(labels, values)]
    np.testing.assert_allclose(sep.auroc_rows(labels, values), expected)


def increment_case(signal: bool, seed: int = 2, n: int = 60, width: int = 30):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n), np.ones(n)].astype(int)
    loss = rng.normal(size=2 * n) + 0.9 * labels
    length = rng.integers(50, 200, 2 * n).astype(float)
    profile = rng.normal(size=(2 * n, width))
    if signal:
        profile[:, 0] += 1.5 * labels
    return np.column_stack([loss, np.log(length)]), profile, labels, np.arange(2 * n)


@pytest.mark.parametrize("signal", [True, False])
def test_increment_finds_signal_only_where_there_is_some(signal):
    base, profile, labels, groups = increment_case(signal)
    row, = sep.increment_rows("a", "b", base, {"nuclear_norm": profile}, labels, groups, 0)
    assert row["gain"] == pytest.approx(row["auroc_with_profile"] - row["auroc_loss_length"])
    if signal:
        assert row["ci_low"] > 0 and row["verdict"].startswith("the nuclear norm profile adds +")
    else:
        assert row["ci_low"] < 0 < row["ci_high"] and "adds nothing detectable" in row["verdict"]


def test_baseline_model_by_hand(monkeypatch):
    """The [loss, log length] model's out-of-fold AUROC, recomputed with plain sklearn (lbfgs: the same objective)
    on the same folds (one penalty, so no inner choice), averaged over the CV seeds."""
    monkeypatch.setattr(classifier, "C_GRID", (1.0,))
    base, profile, labels, groups = increment_case(True)
    row, = sep.increment_rows("a", "b", base, {"nuclear_norm": profile}, labels, groups, 0, resamples=5)
    x = classifier.standardised(base)
    aurocs = []
    for seed in range(sep.CV_SEEDS):
        folds = classifier.assign_folds(labels, groups, classifier.FOLDS, np.random.default_rng(seed))
        oof = np.zeros(len(labels))
        for f in range(classifier.FOLDS):
            train, test = folds != f, folds == f
            model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x[train], labels[train])
            oof[test] = model.decision_function(x[test])
        aurocs.append(roc_auc_score(labels, oof))
    assert row["auroc_loss_length"] == pytest.approx(np.mean(aurocs), abs=1e-9)


@pytest.mark.parametrize("features", [3, 80])
def test_batched_logistic_fits_equal_sklearn(features):
    """Weighted fits (a bootstrap's multiplicities, a fold's zeros) at several penalties at once, in the primal
    (few features) and the dual (more features than samples), against sklearn's objective with repeated rows."""
    rng = np.random.default_rng(4)
    n = 40
    labels = (rng.random(n) < 0.5).astype(int)
    x = classifier.standardised(rng.normal(size=(n, features)) + labels[:, None] * 0.5)
    weights = rng.integers(0, 3, (4, n)).astype(float)
    penalties = np.array([0.01, 0.1, 1.0, 0.1])
    got = classifier.fit_decisions(x, labels, weights, penalties)
    for w, c, decisions in zip(weights, penalties, got):
        rows = np.repeat(np.arange(n), w.astype(int))
        model = LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(x[rows], labels[rows])
        np.testing.assert_allclose(decisions, model.decision_function(x), atol=1e-5)  # sklearn's own tolerance


def test_weighted_auroc_equals_repeated_rows():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 30)
    scores = rng.integers(0, 6, 30).astype(float)  # ties
    weights = rng.integers(0, 3, 30).astype(float)
    rows = np.repeat(np.arange(30), weights.astype(int))
    got = classifier.weighted_auroc(labels[None], scores[None], weights[None])[0]
    assert got == pytest.approx(roc_auc_score(labels[rows], scores[rows]), abs=1e-12)


def test_folds_keep_prompts_together_and_classes_spread():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(20), 2)  # a prompt's two samples (one per side)
    labels = np.tile([0, 1], 20)
    folds = classifier.assign_folds(labels, groups, 5, rng)
    assert all(len(set(folds[groups == g])) == 1 for g in range(20))
    assert all(((folds == f) & (labels == v)).sum() == 4 for f in range(5) for v in (0, 1))


def test_derived_metrics_and_python_api(tiny, tmp_path):
    samples = {s: f"builtin:arith/{s}?n=6" for s in ("none", "detailed")}  # sources: their attributes come along
    samples.update({f"{s}@irrelevant": f"builtin:arith/{s}@irrelevant?n=6" for s in ("none", "detailed")})
    frame = layergrad.compute(tiny(), samples)
    assert frame.attrs["attributes"]["detailed@irrelevant"] == {"style": "detailed", "variant": "irrelevant",
                                                                "family": "reasoning"}
    result = layergrad.analyze(frame, metrics=["nuclear_norm", "nuclear_norm_per_loss", "nuclear_norm_summed"],
                               n_boot=100, log=lambda *a: None)
    info = frame.attrs["samples"].set_index("sample_id")
    stats = result.data.stats.set_index("sample_id")
    np.testing.assert_allclose(stats.nuclear_norm_per_loss, stats.nuclear_norm / info.loss.reindex(stats.index))
    np.testing.assert_allclose(stats.nuclear_norm_summed,
                               stats.nuclear_norm * info.n_response_tokens.reindex(stats.index))
    assert set(result.curves.metric) == {"nuclear_norm", "nuclear_norm_per_loss", "nuclear_norm_summed"}
    assert {"nuclear_norm_per_loss", "nuclear_norm_summed"} <= set(result.tests.metric)
    assert set(result.claims.claim) >= {"H1", "H2", "H5"} and result.claims.verdict.notna().all()
    assert {"loss", "response length (tokens)"} <= set(result.auroc.score) and len(result.increment) == 6 * 3
    assert type(result.figure("headline")).__name__ == "Figure"
    assert type(result.figure("mad", "nuclear_norm_summed")).__name__ == "Figure"
    out = result.write(tmp_path / "a", formats=["png"], log=lambda *a: None)
    for name in ("claims", "auroc", "increment", "curves"):
        assert (out / f"{name}.csv").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert html.index("Claims") < html.index("headline figure") < html.index("Details per pair")


@pytest.mark.slow
def test_analyze_accepts_a_directory_and_a_list(tiny_run, tmp_path):
    one = layergrad.analyze(tiny_run, metrics=["nuclear_norm"], n_boot=50, log=lambda *a: None)
    two = layergrad.analyze([tiny_run, tiny_run], metrics=["nuclear_norm"], n_boot=50, log=lambda *a: None,
                            across_runs=True)
    assert "H1" in set(one.claims.claim) and set(two.groups) > set(f"tiny-1:{g}" for g in one.groups)
    with pytest.raises(layergrad.LayergradError, match="unknown figure"):
        one.figure("pie")


def test_bootstrap_p_is_not_floored_at_one_over_the_draws():
    """A large effect whose draws never reach zero must survive Holm over hundreds of rows."""
    from layergrad.analysis.claims.testing import boot_p

    rng = np.random.default_rng(0)
    far = rng.normal(-0.9, 0.02, 1000)
    assert boot_p(far, -0.9) < 1e-6
    near = rng.normal(0.05, 0.1, 1000)  # many draws beyond zero: the percentile p
    assert boot_p(near, 0.05) == pytest.approx(2 * (near <= 0).mean())
    assert boot_p(np.zeros(5), 0.0) == 1.0


def test_f5_compares_two_runs_curves_and_says_what_the_claim_is_about():
    """F5 between two runs: Spearman ρ of the mean effective-rank curves over relative depth (the same
    rising shape on 6 and 9 layers agrees, ρ = 1), with its caveat on the module rows; 6 prompts, the fewest whose
    exact floor (2 / 2^6) lies below 0.05."""
    from layergrad.analysis import claims
    from layergrad.studies import builtin_claims

    rng = np.random.default_rng(0)
    metrics, prompts = {"effective_rank": {}}, {}
    for run, layers in (("small", 6), ("large", 9)):
        for side in ("high", "low"):
            group = f"{run}:instag/mag/{side}"
            curve = np.linspace(1, 3, layers) * (2 if side == "high" else 1)
            ids = [f"{run}{side}{i}" for i in range(6)]
            metrics["effective_rank"][(group, "q_proj")] = pd.DataFrame(
                curve + rng.normal(0, 0.01, (6, layers)), index=ids)
            prompts[group] = pd.Series([f"p{i}" for i in range(6)], index=ids)
    attributes = {g: {"task": "instag/mag", "quality": g.rsplit("/", 1)[1], "family": "quality"} for g in prompts}
    first = {g: a for g, a in attributes.items() if g.startswith("small:")}
    second = {g: a for g, a in attributes.items() if g.startswith("large:")}
    table = claims.between_runs_table([c for c in builtin_claims() if c.id == "F5"], first, second, metrics,
                                       prompts, 50, 0)
    row = table[(table.claim == "F5") & (table.module == "q_proj")].iloc[0]
    assert row.effect == pytest.approx(1.0) and row.verdict == "holds"
    assert "one family" in row.caveats
