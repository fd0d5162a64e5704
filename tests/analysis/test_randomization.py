"""The claims' one family of tests against SciPy's permutation_test (exact where it enumerates every arrangement,
within Monte Carlo error where it draws them), their floors, and n_to_decide by simulation."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from layergrad.analysis.claims import randomization as rz
from layergrad.analysis.claims.testing import samples_to_decide
from layergrad.analysis.separability import auroc

LOG_RATIO = rz.log_ratio_or_difference(True)


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


@pytest.mark.parametrize("seed", range(3))
def test_label_permutation_equals_scipy_exact(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.lognormal(0, 0.3, 5), rng.lognormal(0.3, 0.3, 6)
    got = rz.mean_test(x, y, False, LOG_RATIO, rng)
    assert got.design.exact and got.design.count == 462
    assert got.p == pytest.approx(scipy_p((x, y), log_ratio, "independent"), abs=1e-12)


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


@pytest.mark.parametrize("paired", [True, False])
def test_n_to_decide_gives_the_power_it_promises(paired):
    """At the predicted n, the test passes in at least 75% of draws from the population (the estimate aims at 80%
    at a shrunken effect). The row's z is the population's at 10 samples a side (from 4000)."""
    rng = np.random.default_rng(7)

    def draw(n):
        x = rng.lognormal(0, 0.2, n)
        y = (x if paired else rng.lognormal(0, 0.2, n)) * rng.lognormal(0.12, 0.2 if paired else 0.0, n)
        return x, y

    z10 = rz.mean_test(*draw(4000), paired, LOG_RATIO, rng).z * np.sqrt(10 / 4000)
    rows = pd.DataFrame({"p": [0.3], "z": [z10], "n": [10], "verdict": ["inconclusive"], "paired": [paired]})
    n = int(samples_to_decide(rows, np.array([np.nan]))[0])
    assert 10 < n < 1000
    passes = [rz.mean_test(*draw(n), paired, LOG_RATIO, rng).p < 0.05 for _ in range(100)]
    assert np.mean(passes) >= 0.75


def test_n_to_decide_respects_the_floor_and_gives_up_on_no_effect():
    rows = pd.DataFrame({"p": [0.12, 0.5], "z": [40.0, 0.8], "n": [3, 20], "verdict": ["inconclusive"] * 2,
                         "paired": [True, True]})
    needed = samples_to_decide(rows, np.array([np.nan, np.nan]))
    assert needed[0] == rz.smallest_n(0.05 / 2, True)  # a huge z at 3 pairs: the exact floor decides (Holm rank 1 of 2)
    assert np.isnan(needed[1])  # |z| <= 1: the shrunken effect is 0, no n would do


@pytest.mark.parametrize("paired", [True, False])
def test_the_length_adjusted_effect_is_zero_where_the_statistic_follows_length_alone(paired):
    """A statistic that is a power of the response length (times noise): the raw change is large, the change at
    equal length is 0 within its CI and its test finds nothing."""
    rng = np.random.default_rng(8)
    n = 40
    lx = rng.integers(50, 400, n).astype(float)
    ly = lx * rng.uniform(1.2, 3.0, n) if paired else rng.integers(100, 800, n).astype(float)
    stat = lambda length: 10 * length ** -0.5 * rng.lognormal(0, 0.05, len(length))
    x, y = stat(lx), stat(ly)
    raw = rz.mean_test(x, y, paired, LOG_RATIO, rng)
    adjusted = rz.length_adjusted(x, y, lx, ly, paired, 500, rng)
    assert raw.p < 1e-3 and np.mean(y) / np.mean(x) - 1 < -0.15
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
        assert row.rests_on.startswith("length-adjusted")
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
