"""A fixed small run against the tables the code before the house clean-up (1e103d3) wrote.

tests/golden/tiny-1e103d3/ holds that commit's stats.parquet, samples.parquet and analyze CSVs of
the run below (tiny-random-llama: built-in arithmetic, Detailed CoT correct and irrelevant and None
CoT, 4 each, with --cosine --spectrum; analyze with 50 bootstrap draws). The numbers must agree to
the tolerances stated here: fp32 forward/backward passes differ by ~1e-7 between CPUs and BLASes,
short answers moved by ~1e-7 when the LM head started keeping 8 positions, and differences of
nearly equal curve values (MAD) and p-values amplify that; every text (verdicts, directions, sample
ids) must be equal.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layergrad.cli import main

GOLDEN = Path(__file__).parent / "golden" / "tiny-1e103d3"
STAT_RTOL = 1e-5  # the statistics of the spectrum, the loss
CSV_RTOL, CSV_ATOL = 1e-3, 1e-9  # analysis tables (MAD, p-values and CIs amplify 1e-7 inputs)
KEYS = {"stats": ["condition", "sample_id", "param"], "samples": ["condition", "sample_id"]}
ADDED = {"cosine_pair"}  # columns and metrics added since 1e103d3 (same-layer cosines, with --cosine)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden") / "tiny"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--cosine", "--spectrum",
                 "--data", "detailed=builtin:arith/detailed?n=4",
                 "--data", "detailed@irrelevant=builtin:arith/detailed@irrelevant?n=4",
                 "--data", "none=builtin:arith/none?n=4", "--out", str(out)]) == 0
    assert main(["analyze", str(out), "--out", str(out / "analysis"), "--bootstrap", "50", "--formats", "png",
                 "--metrics", "nuclear_norm,sigma1_ratio,effective_rank,cosine_next", "-q"]) == 0  # 1e103d3's choice
    return out


def frames(name: str, run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    want = pd.read_parquet(GOLDEN / f"{name}.parquet").sort_values(KEYS[name]).reset_index(drop=True)
    got = pd.read_parquet(run / f"{name}.parquet").sort_values(KEYS[name]).reset_index(drop=True)
    return want, got


def test_stats_and_samples_equal_the_earlier_code(run):
    for name in KEYS:
        want, got = frames(name, run)
        assert [c for c in got.columns if c not in ADDED] == list(want.columns)
        for column in want.columns:
            if column == "spectrum":  # every σ to 1e-6 of σ1 (the smallest ones are rounding noise)
                for a, b in zip(want[column], got[column]):
                    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * (a[0] if len(a) else 1))
            elif column == "sigma_min":
                np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-6 * want.sigma_max.max())
            elif column == "cosine_next":
                np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-5)
            elif want[column].dtype.kind == "f":
                np.testing.assert_allclose(got[column], want[column], rtol=STAT_RTOL, err_msg=column)
            else:
                assert got[column].tolist() == want[column].tolist(), column


@pytest.mark.parametrize("table", sorted(p.stem for p in (GOLDEN / "analysis").glob("*.csv")))
def test_analysis_tables_equal_the_earlier_code(run, table):
    want = pd.read_csv(GOLDEN / "analysis" / f"{table}.csv")
    got = pd.read_csv(run / "analysis" / f"{table}.csv")
    if "metric" in got.columns:
        got = got[~got.metric.isin(ADDED)].reset_index(drop=True)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    numbers = want.select_dtypes("number").columns
    pd.testing.assert_frame_equal(got.drop(columns=numbers), want.drop(columns=numbers), obj=table)
    for column in numbers:
        np.testing.assert_allclose(got[column], want[column], rtol=CSV_RTOL, atol=CSV_ATOL, err_msg=f"{table}.{column}")


def test_reproduce_of_the_first_paper_gives_the_earlier_claims(paper_data, tmp_path):
    """`layergrad reproduce` without --study: the claims table 1e103d3 wrote for the same small grid."""
    out = tmp_path / "repro"
    assert main(["reproduce", "--model", "tiny-random-llama", "--bootstrap", "20", "--metrics", "nuclear_norm",
                 "--quiet", "--paper-data", paper_data, "--limit", "3", "--tasks", "gsm8k,wiki", "--no-task-reports",
                 "--out", str(out)]) == 0
    want = pd.read_csv(GOLDEN.parent / "reproduce-1e103d3" / "claims.csv")
    got = pd.read_csv(out / "claims.csv")
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    numbers = want.select_dtypes("number").columns
    pd.testing.assert_frame_equal(got.drop(columns=numbers), want.drop(columns=numbers))
    for column in numbers:
        np.testing.assert_allclose(got[column], want[column], rtol=CSV_RTOL, atol=CSV_ATOL, err_msg=column)
