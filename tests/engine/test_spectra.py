"""Spectral maths against an fp64 SVD of the materialised gradient."""

import math

import pytest
import torch

from layergrad.engine import spectra, statistics


def stats_of(sq, n_full):
    return statistics.evaluate(statistics.Spectrum(sq, n_full))


def factors(t, p, d, seed=0, decay=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, t, d, generator=g)
    delta = torch.randn(1, t, p, generator=g)
    if decay:  # a spread of scales, as real gradients have
        delta = delta * torch.logspace(0, -4, t).view(1, t, 1)
    return x, delta


@pytest.mark.parametrize("t,p,d", [(5, 16, 24), (40, 16, 24), (24, 64, 32), (100, 96, 48), (7, 7, 7), (6, 80, 40), (10, 200, 30)])
@pytest.mark.parametrize("route", ["core", "core-cholesky", "dense"])
def test_routes_match_fp64_svd(t, p, d, route):
    x, delta = factors(t, p, d, decay=True)
    ref = spectra.reference_singular_values(x[0], delta[0])
    if route == "dense":
        k = spectra.dense_matrix(x, delta)
    else:
        k = spectra.core_matrix(spectra.input_factor(x, "cholesky" if "cholesky" in route else "qr"), delta)
    sq = spectra.squared_singular_values(k)[0]
    got = stats_of(sq[None], min(p, d))[0]
    want = stats_of((ref**2)[None], min(p, d))[0]
    for i, name in enumerate(statistics.names()[:4]):
        assert math.isclose(got[i], want[i], rel_tol=1e-5), name


@pytest.mark.parametrize("shape", [(2, 30, 70), (1, 90, 30), (1, 26, 26)])
def test_block_upper_gram_equals_the_full_product_where_the_solvers_read_it(shape):
    """The blocked Gram multiplies the upper block triangle only: same upper triangle, same eigenvalues."""
    a = torch.randn(*shape, dtype=torch.float64)
    full = a @ a.transpose(-1, -2) if shape[1] <= shape[2] else a.transpose(-1, -2) @ a
    got = spectra.short_gram(a, "blocked")
    assert (got[..., -1, 0] == 0).all() and (full[..., -1, 0] != 0).all()  # the blocked path ran: below-diagonal blocks left 0
    scale = full.abs().max().item()  # fp64 products of different shapes: a few ulps of the largest entry
    torch.testing.assert_close(got.triu(), full.triu(), rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(spectra.squared_singular_values(got), spectra.squared_singular_values(full),
                               rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("t,d", [(30, 40), (70, 30)])
def test_triangular_product_skips_only_zeros(t, d):
    x, delta = factors(t, 64, d)
    r = spectra.input_factor(x)
    assert not r.tril(-1).any()
    full = r @ delta
    torch.testing.assert_close(spectra.triangular_product(r, delta, "blocked"), full, rtol=0,
                               atol=1e-6 * full.abs().max().item())


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_padded_rows_do_not_change_the_spectrum(method):
    x, delta = factors(10, 12, 20)
    xp = torch.cat([x, torch.zeros(1, 6, 20)], 1)
    dp = torch.cat([delta, torch.zeros(1, 6, 12)], 1)
    a = spectra.squared_singular_values(spectra.core_matrix(spectra.input_factor(x, "qr"), delta))
    b = spectra.squared_singular_values(spectra.core_matrix(spectra.input_factor(xp, method), dp))
    # fp32 QR / Cholesky factors of different matrices: the same value to fp32 rounding times a small
    # growth factor (1e-5 relative, as every fp32 route here; a positive sum, so relative is right)
    assert torch.allclose(a.sum(), b.sum(), rtol=1e-5, atol=0)
    if method == "cholesky":
        assert spectra.cholesky_factor(xp) is not None  # padding alone does not force the QR fallback


def test_cholesky_factor_with_repeated_inputs_keeps_the_spectrum():
    """Repeated tokens give identical rows of X (a singular Gram): the result must not change."""
    x, delta = factors(12, 16, 32, decay=True)
    x[0, 5:9] = x[0, 2]
    ref = spectra.reference_singular_values(x[0], delta[0])
    sq = spectra.squared_singular_values(spectra.core_matrix(spectra.input_factor(x, "cholesky"), delta))
    got = stats_of(sq, 16)[0]
    want = stats_of((ref**2)[None], 16)[0]
    assert math.isclose(got[0], want[0], rel_tol=1e-5)


def test_statistics_by_hand():
    s = statistics.spectrum_stats(torch.tensor([3.0, 1.0, 0.0]), n_full=3)
    assert s.nuclear_norm == pytest.approx(4.0)
    assert s.sigma_max == pytest.approx(3.0)
    assert s.sigma1_ratio == pytest.approx(0.75)
    assert s.frobenius_norm == pytest.approx(math.sqrt(10))
    assert s.effective_rank == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert s.stable_rank == pytest.approx(10 / 9)
    assert s.sigma_min == 0.0


def test_zero_gradient_gives_zeros_not_nan():
    s = statistics.spectrum_stats(torch.zeros(4))
    assert (s.nuclear_norm, s.sigma1_ratio, s.effective_rank, s.stable_rank) == (0, 0, 0, 0)


def test_cost_rule_prefers_core_for_short_and_dense_for_long_samples():
    assert spectra.rule_recipe(16, 576, 576).route == "core"
    assert spectra.rule_recipe(4096, 192, 576).route == "dense"
