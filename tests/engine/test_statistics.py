"""The statistics registry: one call adds a statistic everywhere."""

import pandas as pd
import pytest
import torch

import layergrad
from layergrad.cli import main
from layergrad.engine import statistics


@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test (other tests in this process must not see ours)."""
    monkeypatch.setattr(statistics, "STATISTICS", dict(statistics.STATISTICS))
    return statistics.STATISTICS


def test_a_new_statistic_reaches_stats_curves_and_the_help(registry, tmp_path, capsys):
    layergrad.register_statistic("top2_share", lambda s: statistics.ratio(s.sigma[:, :2].sum(-1), s.nuclear),
                                 label="share of ‖G‖* in σ1 + σ2", unit="share", more="a more concentrated gradient")
    run = tmp_path / "run"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--data", "a=builtin:arith/none?n=3",
                 "--data", "b=builtin:arith/detailed?n=3", "--out", str(run)]) == 0
    stats = pd.read_parquet(run / "stats.parquet")
    assert "top2_share" in stats.columns and stats.top2_share.between(0, 1).all()
    assert (stats.top2_share >= stats.sigma1_ratio - 1e-12).all()
    assert main(["analyze", str(run), "--out", str(tmp_path / "a"), "--metrics", "top2_share", "--bootstrap", "20",
                 "--formats", "png", "-q"]) == 0
    curves = pd.read_csv(tmp_path / "a" / "curves.csv")
    assert set(curves.metric) == {"top2_share"}
    capsys.readouterr()
    assert main(["analyze", "--help"]) == 0
    assert "top2_share" in capsys.readouterr().out


def test_scalar_only_spectra_give_what_the_scalars_determine():
    """An imported file without singular values: ratios from the scalars, the effective rank NaN."""
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    values = dict(zip(statistics.names(), statistics.evaluate(statistics.Spectrum.from_scalars(
        nuclear=one(4.0), sigma_max=one(3.0), sigma_min=one(0.0), frobenius_sq=one(10.0)))[0].tolist()))
    assert values["sigma1_ratio"] == 0.75 and values["stable_rank"] == pytest.approx(10 / 9)
    assert values["effective_rank"] != values["effective_rank"]  # NaN


def test_a_bad_name_is_refused(registry):
    with pytest.raises(layergrad.LayergradError, match="identifier"):
        layergrad.register_statistic("top 2", lambda s: s.nuclear, label="x", unit="share", more="x")
