"""The claims' one family of tests against SciPy's permutation_test (exact where it enumerates every arrangement,
within Monte Carlo error where it draws them), their floors, the adjustment for confounds and its gate, and
n_to_decide by simulation (calibration under the null: test_calibration.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from layergrad.analysis.claims import adjustment as adj
from layergrad.analysis.claims import randomization as rz
from layergrad.analysis.claims.testing import samples_to_decide
from layergrad.analysis.separability import auroc

LOG_RATIO = rz.log_ratio_or_difference(True)
LOG_DIFF = rz.log_ratio_or_difference(False)


def scipy_p(data, statistic, permutation_type, alternative="two-sided", n_resamples=np.inf):
    return stats.permutation_test(data, statistic, permutation_type=permutation_type, alternative=alternative,
                                  n_resamples=n_resamples, vectorized=False, random_state=0).pvalue


def log_ratio(x, y):
    return np.log(np.mean(y) / np.mean(x))


@pytest.mark.parametrize("seed", range(3))
def test_sign_flip_equals_scipy_exact(seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 0.3, 9)
    y = x * rng.lognormal(0.15, 0.2, 9)
    got = rz.mean_test(x, y, True, LOG_RATIO, rng)
    assert got.design.exact and got.design.count == 2 ** 9
    assert got.p == pytest.approx(scipy_p((x, y), log_ratio, "samples"), abs=1e-12)


def welch_log_ratio(x, y):
    """log(mean y / mean x) over its delta-method standard error, each side's own variance (the gradient taken at
    the pooled mean, which no permutation changes)."""
    m = np.mean(np.r_[x, y])
    return log_ratio(x, y) / np.sqrt(np.var(x, ddof=1) / (len(x) * m ** 2) + np.var(y, ddof=1) / (len(y) * m ** 2))


@pytest.mark.parametrize("seed", range(3))
def test_label_permutation_is_scipys_studentized_permutation_test(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.lognormal(0, 0.3, 5), rng.lognormal(0.3, 0.6, 6)
    got = rz.mean_test(x, y, False, LOG_RATIO, rng)
    assert got.design.exact and got.design.count == 462
    assert got.p == pytest.approx(scipy_p((x, y), welch_log_ratio, "independent"), abs=1e-9)


def test_monte_carlo_within_its_error_of_scipy():
    rng = np.random.default_rng(5)
    x = rng.lognormal(0, 0.3, 40)
    y = x * rng.lognormal(0.04, 0.2, 40)
    got = rz.mean_test(x, y, True, LOG_RATIO, rng)
    want = scipy_p((x, y), log_ratio, "samples", n_resamples=20000)
    assert not got.design.exact
    assert abs(got.p - want) < 4 * np.sqrt(want * (1 - want) / rz.DRAWS) + 0.005  # two Monte Carlo errors


def test_curves_statistic_swaps_whole_rows():
    """A statistic of the mean curves (here the ratio of their MADs) sees each unit's whole row swapped."""
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0, 0.2, (7, 6)), rng.lognormal(0, 0.2, (7, 6)) * np.linspace(1, 2, 6)
    flat = lambda c: np.mean(np.abs(c - np.median(c, axis=-1, keepdims=True)), axis=-1)
    got = rz.mean_test(a, b, True, lambda ca, cb: np.log(flat(cb) / flat(ca)), rng)
    signs = (np.arange(2 ** 7)[:, None] >> np.arange(7)) & 1
    null = [np.log(flat(np.where(s[:, None], b, a).mean(0)) / flat(np.where(s[:, None], a, b).mean(0))) for s in signs]
    observed = np.log(flat(b.mean(0)) / flat(a.mean(0)))
    want = min(1.0, 2 * min(np.mean(np.array(null) <= observed + 1e-12), np.mean(np.array(null) >= observed - 1e-12)))
    assert got.p == pytest.approx(want, abs=1e-12)


def test_floors():
    """However far apart, 4 pairs cannot give p below 2/16, nor 3 vs 3 records below 2/20."""
    x = np.ones(4)
    assert rz.mean_test(x, 10 * x + np.arange(4), True, LOG_RATIO, np.random.default_rng(0)).p == pytest.approx(2 / 16)
    assert rz.mean_test(np.ones(3), np.full(3, 9.0) + np.arange(3), False, LOG_RATIO,
                        np.random.default_rng(0)).p == pytest.approx(2 / 20)
    assert rz.Design(True, 30, 30).floor == pytest.approx(2 / 2 ** 30)
    assert [rz.smallest_n(t, True) for t in (0.05, 0.01)] == [6, 8]  # 2/2^6 = 0.031 < 0.05; 2/2^8 < 0.01 < 2/2^7
    assert rz.smallest_n(0.05, False) == 4  # 2/C(8, 4) = 0.029 < 0.05 <= 2/C(6, 3) = 0.1


def test_large_effect_beyond_the_draws_gets_the_normal_tail_not_the_draws_resolution():
    rng = np.random.default_rng(2)
    x = rng.lognormal(0, 0.1, 60)
    y = 2 * x * rng.lognormal(0, 0.1, 60)
    got = rz.mean_test(x, y, True, LOG_RATIO, rng)
    assert got.p < 1e-6 and got.p >= rz.Design(True, 60, 60).floor and got.z > 5


def test_equivalence_equals_two_scipy_one_sided_tests():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 0.2, 10)
    y = x * rng.lognormal(0.01, 0.03, 10)
    margin = 0.1
    got = rz.equivalence_test(x, y, True, margin, rng)
    upper = scipy_p((x, y / (1 + margin)), log_ratio, "samples", "less")
    lower = scipy_p((x, y / (1 - margin)), log_ratio, "samples", "greater")
    assert got.p == pytest.approx(max(upper, lower, got.design.floor / 2), abs=1e-12)
    assert got.p < 0.05  # y within 1% of x: equivalent


def test_one_sample_equivalence_equals_scipy_sign_flips():
    rng = np.random.default_rng(4)
    v = rng.normal(0.02, 0.03, 11)
    got = rz.one_sample_equivalence(v, 0.1, rng)
    upper = scipy_p((v - 0.1,), np.mean, "samples", "less")
    lower = scipy_p((v + 0.1,), np.mean, "samples", "greater")
    assert got.p == pytest.approx(max(upper, lower, got.design.floor / 2), abs=1e-12)


def test_paired_rank_test_equals_scipy_swapping_the_ranks():
    rng = np.random.default_rng(6)
    labels = np.r_[np.zeros(5), np.ones(5)].astype(int)
    first = labels + rng.normal(0, 0.6, 10)
    second = labels + rng.normal(0, 1.5, 10)
    got = rz.paired_rank_test(labels, first, second, rng)
    r1, r2 = stats.rankdata(first) / 10, stats.rankdata(second) / 10
    want = scipy_p((r1, r2), lambda s1, s2: auroc(labels, s1) - auroc(labels, s2), "samples")
    assert got.p == pytest.approx(max(want, got.design.floor), abs=1e-12)


def decide(z: float, n: int, p: float = 0.3, ci=(np.nan, np.nan), paired: bool = True) -> dict:
    rows = pd.DataFrame({"p": [p], "z": [z], "n": [n], "verdict": ["inconclusive"], "paired": [paired],
                         "effect": [z], "ci_low": [ci[0]], "ci_high": [ci[1]], "effect_kind": ["difference"],
                         "rests_on": ["raw effect"], "adjusted": [np.nan], "adjusted_low": [np.nan],
                         "adjusted_high": [np.nan]})
    return {k: v[0] for k, v in samples_to_decide(rows, np.array([np.nan]), np.array([0.05])).items()}


def test_n_to_decide_is_met_on_average_at_the_n_it_states():
    """Draw a true effect (flat over a wide range), data of 30 pairs, the stated n; then fresh data at that n and
    the same test: the share of those that decide is 80% within 5 points (over 1,000 such studies), as the
    predictive power promises — not only were the observed effect the true one."""
    rng = np.random.default_rng(7)
    n0, decided, stated = 30, [], 0
    while stated < 1000:
        delta = rng.uniform(-0.6, 0.6)  # the true mean difference in units of the pairs' spread
        first = rz.mean_test(np.zeros((n0, 1)), rng.normal(delta, 1, (n0, 1)), True, LOG_DIFF, rng)
        if first.p < 0.05:
            continue  # decided already: no number is stated
        n = decide(first.z, n0, first.p)["n_to_decide"]
        if not np.isfinite(n) or n > 5000:
            continue
        stated += 1
        again = rz.mean_test(np.zeros((int(n), 1)), rng.normal(delta, 1, (int(n), 1)), True, LOG_DIFF, rng)
        decided.append(again.p < 0.05)
    assert abs(np.mean(decided) - 0.8) <= 0.05


def test_n_to_decide_has_no_answer_without_a_direction_and_spans_the_ci():
    assert np.isnan(decide(0.8, 20)["n_to_decide"])  # |z| < 0.84: under 80% that the sign is right, whatever n
    got = decide(1.5, 20, ci=(0.5, 2.5))
    assert got["n_to_decide_low"] < got["n_to_decide"] < got["n_to_decide_high"]
    assert np.isnan(decide(1.5, 20, ci=(-0.5, 3.5))["n_to_decide_high"])  # the CI spans 0: no upper end


def test_n_to_decide_respects_the_floor():
    got = decide(40.0, 3, p=0.12)
    assert got["n_to_decide"] == rz.smallest_n(0.05, True)  # a huge z at 3 pairs: the exact floor decides


@pytest.mark.parametrize("paired", [True, False])
def test_the_length_adjusted_effect_is_zero_where_the_statistic_follows_length_alone(paired):
    """A statistic that is a power of the response length (times noise): the raw change is large, the change at
    equal length is 0 within its CI and its test finds nothing."""
    rng = np.random.default_rng(8)
    n = 40
    lx = rng.integers(50, 400, n).astype(float)
    ly = lx * rng.uniform(0.8, 2.0, n) if paired else rng.integers(100, 800, n).astype(float)
    stat = lambda length: 10 * length ** -0.5 * rng.lognormal(0, 0.05, len(length))
    x, y = stat(lx), stat(ly)
    raw = rz.mean_test(x, y, paired, LOG_RATIO, rng)
    adjusted = adj.adjusted_effect(x, y, lx[:, None], ly[:, None], paired, 500, rng)
    assert raw.p < 1e-3 and np.mean(y) / np.mean(x) - 1 < -0.1
    assert abs(np.expm1(adjusted.log_ratio)) < 0.03 and adjusted.low < 0 < adjusted.high
    assert adjusted.result.p > 0.05


def test_a_claim_rests_on_the_adjusted_effect_where_lengths_overlap():
    """F1 on two subsets whose nuclear norm only follows length: the raw effect 'holds' no more; the row says
    what it rests on and carries the adjusted effect with its CI."""
    from layergrad.analysis import claims
    from layergrad.studies import builtin_claims

    rng = np.random.default_rng(9)
    metrics, prompts, lengths, attributes = {"nuclear_norm": {}}, {}, {}, {}
    for side, (lo, hi) in (("high", (50, 300)), ("low", (100, 600))):
        group = f"instag/mag/{side}"
        ids = [f"{side}{i}" for i in range(30)]
        length = rng.integers(lo, hi, 30).astype(float)
        metrics["nuclear_norm"][(group, "q_proj")] = pd.DataFrame(
            (length ** -0.5)[:, None] * rng.lognormal(0, 0.05, (30, 4)), index=ids)
        prompts[group] = pd.Series(ids, index=ids)
        lengths[group] = pd.Series(length, index=ids)
        attributes[group] = {"task": "instag/mag", "quality": side, "family": "quality"}
    table = claims.claims_table([c for c in builtin_claims() if c.id == "F1"], attributes, metrics, prompts, lengths,
                                200, 0)
    rows = table[(table.claim == "F1") & table.module.str.startswith("q_proj · ")]
    assert len(rows) == 3  # early, middle, late
    for row in rows.itertuples():
        assert row.rests_on.startswith("adjusted effect at equal length")
        assert row.verdict == "inconclusive" and row.adjusted_low < 0 < row.adjusted_high
        assert "Freedman-Lane" in row.test


def test_the_net_rd_does_not_grow_with_noise():
    """Two curves that differ only by noise: the paper's RD is about the noise's mean |difference|; the net RD,
    averaged over the layers before the magnitude, shrinks as 1/sqrt(layers) — and a real shift shows in both."""
    from layergrad.analysis.curves import net_relative_difference, relative_difference

    rng = np.random.default_rng(10)
    a, b = 1 + rng.normal(0, 0.1, 400), 1 + rng.normal(0, 0.1, 400)
    assert relative_difference(a, b) > 0.1 and net_relative_difference(a, b) < 0.04
    assert net_relative_difference(a, 1.2 * b) == pytest.approx(0.2, abs=0.04)


def test_the_equal_length_gate_refuses_pairs_all_longer_on_one_side():
    """Detailed 2-4x longer than its pair in every pair (the paper's MATH files): the lengths' ranges overlap, but no
    pair is near equal length, so the intercept at equal length would extrapolate — the row is confounded, says why,
    and its verdict does not rest on the adjusted effect; pairs near equal length are identified."""
    from layergrad.analysis.claims.adjustment import paired_support

    rng = np.random.default_rng(11)
    lx = rng.integers(100, 400, 30).astype(float)
    longer = paired_support("length", np.log(lx * rng.uniform(2, 4, 30)) - np.log(lx), ("simplified", "detailed"))
    assert not longer.identified
    assert longer.words.startswith("length: 0% of the pairs within ±25% of equal (detailed larger in 100%")
    near = paired_support("length", np.log(rng.uniform(0.85, 1.2, 30)), ("a", "b"))
    assert near.identified


def test_a_paired_claim_on_pairs_all_longer_on_one_side_is_confounded():
    from layergrad.analysis.claims.context import Cell, Context, Where
    from layergrad.analysis.claims.kinds import pairs
    from layergrad.studies import builtin_claims

    rng = np.random.default_rng(12)
    lx = rng.integers(100, 400, 30).astype(float)
    ly = lx * rng.uniform(2, 4, 30)
    ids = {g: [f"{g}{i}" for i in range(30)] for g in ("s", "d")}
    metrics = {"nuclear_norm": {(g, "q_proj"): pd.DataFrame((100 / length)[:, None] * rng.lognormal(0, 0.1, (30, 6)),
                                                            index=ids[g]) for g, length in (("s", lx), ("d", ly))}}
    prompts = {g: pd.Series(range(30), index=ids[g]) for g in ids}
    lengths = {"s": pd.Series(lx, index=ids["s"]), "d": pd.Series(ly, index=ids["d"])}
    attrs = {"s": {"style": "simplified", "variant": "correct", "family": "reasoning"},
             "d": {"style": "detailed", "variant": "correct", "family": "reasoning"}}
    ctx = Context(metrics, prompts, 200, np.random.default_rng(0), covariates={"length": lengths})
    h3a = next(c for c in builtin_claims() if c.id == "H3a")
    row = pairs.difference(ctx, h3a, Where(Cell("math-algebra", attrs)), "q_proj")
    assert row["rests_on"] == "raw effect (the adjustment would extrapolate)"
    assert row["confounded_by"].startswith("length: 0% of the pairs within ±25% of equal")
    assert "adjusted" in row and np.isfinite(row["adjusted"])  # shown, not used
