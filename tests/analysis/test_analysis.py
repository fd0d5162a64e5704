"""Analysis: hand-computed MAD / RD / segments / Holm / AUROC / OLS, bootstrap coverage, the
analyze command end to end (CSV files, figures, tables, an escaped report)."""

import numpy as np
import pandas as pd
import pytest

import layergrad
from layergrad.analysis import curves, length, separability
from layergrad.analysis import significance as tests
from layergrad.cli import main


def test_mad_and_segments_by_hand():
    assert curves.mad([1, 3, 2]) == pytest.approx(1.5)
    assert np.isnan(curves.mad([4.0]))
    assert curves.segment_bounds(28, "paper") == {"early": (0, 7), "middle": (7, 21), "late": (21, 28), "all": (0, 28)}
    assert curves.segment_bounds(32)["middle"] == (10, 20)
    assert curves.segment_bounds(26)["late"] == (20, 26)
    assert curves.segment_bounds(42)["early"] == (0, 12)
    assert curves.segment_bounds(30) == {"early": (0, 10), "middle": (10, 20), "late": (20, 30), "all": (0, 30)}
    assert curves.segment_bounds(32, "thirds")["early"] == (0, 11)
    with pytest.raises(ValueError):
        curves.segment_bounds(30, "paper")
    # MAD_all includes the steps across segment borders
    curve = np.array([0, 1, 3, 6, 10, 15, 21, 28, 36], float)
    assert curves.mad(curve) == pytest.approx(np.mean(np.diff(curve)))


def test_relative_difference_by_hand():
    assert curves.relative_difference([1, 2], [2, 1]) == pytest.approx((1 + 0.5) / 2)
    assert curves.relative_difference([0, 1], [1e-10, 1]) == pytest.approx(0.5)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        sample = rng.normal(1.0, 2.0, size=(60, 1))
        lo, hi = curves.interval(curves.bootstrap_means(sample, 400, rng))
        hits += lo[0] <= 1.0 <= hi[0]
    assert 0.90 <= hits / 300 <= 0.985


def test_holm_by_hand():
    np.testing.assert_allclose(tests.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = tests.holm([0.5, np.nan])
    assert out[0] == 0.5 and np.isnan(out[1])


def test_tests_and_effect_sizes():
    x = np.arange(1.0, 21.0)
    paired = tests.compare(x, x + 1, paired=True)
    assert paired["test"] == "wilcoxon" and paired["effect"] == 1.0 and paired["p"] < 0.001
    unpaired = tests.compare(x, x + 100, paired=False)
    assert unpaired["test"] == "mann-whitney" and unpaired["effect"] == 1.0
    same = tests.compare(x, x.copy(), paired=True)
    assert same["p"] == 1.0 and same["effect"] == 0.0


@pytest.mark.parametrize("n_a,n_b,paired", [(3, 3, False), (4, 12, False), (12, 12, False), (6, 6, True), (16, 16, True)])
def test_columns_at_once_equal_one_by_one(n_a, n_b, paired):
    """The vectorised tests give SciPy's 'auto' answers column by column: exact and asymptotic,
    with and without ties, equal or zero differences."""
    rng = np.random.default_rng(n_a + n_b)
    x = rng.standard_normal((n_a, 12))
    y = (x if paired else rng.standard_normal((n_b, 12))) + rng.standard_normal((n_b, 12)) * 0.3 + 0.2
    x[:2, 3], y[:2, 3] = 1.0, 1.0  # ties (and zero paired differences)
    y[:, 4] = x[:, 4] if paired else np.round(y[:, 4])
    got = tests.compare_columns(x, y, paired)
    for j, row in enumerate(got):
        want = tests.compare(x[:, j], y[:, j], paired)
        assert row["test"] == want["test"] and row["effect"] == pytest.approx(want["effect"])
        assert row["p"] == pytest.approx(want["p"], rel=1e-12), j


def test_auroc_and_ols_by_hand():
    assert separability.auroc(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 0.5])) == 0.5
    assert separability.auroc(np.array([0, 1]), np.array([1.0, 1.0])) == 0.5
    rng = np.random.default_rng(0)
    is_b = np.r_[np.zeros(30), np.ones(30)]
    log_len = rng.normal(size=60) + is_b
    y = 0.5 * is_b + 2.0 * log_len + rng.normal(scale=1e-3, size=60)
    beta, lo, hi = length.ols_effect(y, [is_b, log_len])
    assert beta == pytest.approx(0.5, abs=0.01) and lo < beta < hi
    assert length.length_overlap(np.array([1, 2]), np.array([5, 6])) == 0.0


def test_paired_index_needs_shared_prompts():
    a = pd.Series({f"a{i}": f"q{i}" for i in range(10)})
    b = pd.Series({f"b{i}": f"q{i}" for i in range(10)})
    assert len(tests.paired_index(a, b)) == 10
    c = pd.Series({f"c{i}": f"other{i}" for i in range(10)})
    assert tests.paired_index(a, c) is None


@pytest.mark.slow
def test_analyze_writes_every_output(tiny_run, tmp_path):
    out = tmp_path / "analysis"
    assert main(["analyze", str(tiny_run), "--out", str(out), "--bootstrap", "200", "--formats", "png", "-q"]) == 0
    for name in ("curves", "mad", "rd", "tests", "auroc", "length"):
        assert (out / f"{name}.csv").stat().st_size > 0
    both = pd.read_csv(out / "curves.csv")
    curve_rows, differences = both[both.vs.isna()], both[both.vs.notna()]  # the conditions' curves, then the pairs'
    assert set(differences.group + " vs " + differences.vs) >= {"none@irrelevant vs none", "detailed vs none"}
    assert (curve_rows.ci_low <= curve_rows["mean"] + 1e-12).all() and (curve_rows["mean"] <= curve_rows.ci_high + 1e-12).all()
    assert set(curve_rows.metric) == {"nuclear_norm", "sigma1_ratio", "effective_rank", "cosine_next", "cosine_pair"}
    cosine = curve_rows[curve_rows.metric == "cosine_next"]
    assert cosine.layer.max() == curve_rows.layer.max() - 1 and cosine["mean"].abs().max() <= 1
    test_rows = pd.read_csv(out / "tests.csv")
    pair = test_rows[(test_rows.a == "none") & (test_rows.b == "none@irrelevant")]
    assert len(pair) and pair.paired.all()  # same questions in both: paired Wilcoxon
    assert (test_rows.p_holm >= test_rows.p - 1e-12).all()
    for name in ("panels_nuclear_norm", "conditions_nuclear_norm", "irrelevant_nuclear_norm", "mad_nuclear_norm",
                 "heatmap_nuclear_norm"):
        assert (out / "figures" / f"{name}.png").exists()
    for ext in ("md", "csv", "tex"):
        assert (out / "tables" / f"mad_nuclear_norm.{ext}").exists()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "H1" in html


def test_report_escapes_dataset_text(script_report):
    html = script_report.read_text()
    assert "&lt;script&gt;console.error(&#39;injected 0&#39;)&lt;/script&gt;" in html
    assert "<script>console" not in html


def test_compare_needs_shared_conditions(tiny_run, tmp_path, capsys):
    assert main(["compare", str(tiny_run), "--out", str(tmp_path / "c")]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_compare_two_models_on_the_same_data(tiny_run, tmp_path):
    other = tmp_path / "qwen2"
    assert main(["compute", "--model", "tiny-random-qwen2", "-q", "--out", str(other),
                 "--data", "none=builtin:arith/none?n=8", "--data", "detailed=builtin:arith/detailed?n=8"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(tiny_run), str(other), "--out", str(out), "--bootstrap", "50",
                 "--metrics", "nuclear_norm", "--formats", "png", "-q"]) == 0
    test_rows = pd.read_csv(out / "tests.csv")
    assert set(zip(test_rows.a, test_rows.b)) == {("tiny:none", "qwen2:none"), ("tiny:detailed", "qwen2:detailed")}
    assert test_rows.paired.all()  # same prompts in both runs
    curve_rows = pd.read_csv(out / "curves.csv")
    assert {"tiny:none", "qwen2:none", "tiny:none@irrelevant"} <= set(curve_rows.group)


def test_analyze_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    for args, needle in ((["--formats", "gif"], "unknown figure format"), (["--metrics", "nuclear"], "unknown metric"),
                         (["--bootstrap", "0"], "--bootstrap must be at least 10")):
        assert main(["analyze", str(tiny_run), "--out", str(tmp_path / "a"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
    assert main(["analyze", str(tmp_path / "no-run"), "--out", str(tmp_path / "b")]) == 2
    assert "not a finished layergrad run" in capsys.readouterr().err


def test_two_conditions_no_study_describes_get_the_default_comparisons(tiny):
    """Samples given as lists carry no attributes: analyze states A vs B for each statistic and depth third, two-
    sided, through the claims machinery (Holm over the table, CI, the length caveat). Short answers against long
    ones never overlap in length: no row says holds or fails, each says 'confounded', why, and what its raw effect
    would have said."""
    from layergrad.data.samples import Sample

    short = [Sample(f"What is {i}+{i}?", f"{2 * i}.", i) for i in range(6)]
    long = [Sample(f"What is {i}+{i}?", f"Let us add {i} and {i}: the sum is {2 * i}. " * 3, i) for i in range(6)]
    frame = layergrad.compute(tiny("tiny-random-llama"), {"short": short, "long": long})
    a = layergrad.analyze(frame, n_boot=50, log=lambda *_: None)
    want = {f"long vs short: {m}, {s}" for m in a.metrics for s in ("early", "middle", "late")}
    assert set(a.claims.claim) == want
    rows = a.claims[a.claims.module != "all modules"]
    assert (a.claims.verdict == "confounded").all() and (rows.n == 6).all()
    assert rows.raw_verdict.isin(["holds", "fails", "inconclusive"]).all()
    assert rows.confounded_by.str.startswith("length: 0% of the pairs within ±25% of equal (long larger in 100%").all()
    assert (rows[rows.claim.str.contains("nuclear_norm")].effect < 0).all()  # long relative to short, as the details
    assert rows.caveats.str.contains("response lengths do not overlap").all()


def test_relative_mad_is_blind_to_scale_and_sees_shape():
    curve = np.array([4.0, 3.0, 5.0, 2.0])
    assert curves.relative_mad(10 * curve) == pytest.approx(curves.relative_mad(curve), rel=1e-12)
    assert curves.relative_mad(curve) == pytest.approx(curves.mad(curve) / curve.mean(), rel=1e-12)
    assert curves.relative_mad(np.array([3.5, 3.5, 3.5, 3.5])) == 0.0


@pytest.mark.parametrize("scale,flatter", [("relative", False), ("raw", True)])
def test_a_curve_only_scaled_down_is_not_flatter_in_its_own_scale(scale, flatter):
    """mad_change: 'low' is 'high' divided by 5 sample by sample (the same shape): the raw MAD falls by 80% with
    the level, the scale-free one does not move."""
    from layergrad.analysis.claims import claims_table
    from layergrad.studies.schema import ClaimSpec

    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(12)]
    high = pd.DataFrame(rng.normal([10, 14, 9, 16, 12], 0.5, (12, 5)), index=ids)
    metrics = {"nuclear_norm": {("high", "q_proj"): high, ("low", "q_proj"): high / 5}}
    prompts = {side: pd.Series([f"prompt {i}" for i in range(12)], index=ids) for side in ("high", "low")}
    spec = ClaimSpec(id="M", statement="-", kind="mad_change", compare={"level": ["low", "high"]}, direction="less",
                     options={"scale": scale})
    table = claims_table([spec], {"high": {"level": "high"}, "low": {"level": "low"}}, metrics, prompts, {}, 200, 0,
                         whole="all")
    row = table[table.module == "q_proj"].iloc[0]
    assert row.effect == pytest.approx(-0.8 if flatter else 0.0, abs=1e-9)


@pytest.mark.parametrize("claim_id", ["H7a", "H7b"])
def test_h7_is_zero_when_the_statistic_follows_length_alone(claim_id):
    """Each sample's nuclear norm is c·T^-0.5 (T its response length) in every condition, the curve's shape the
    same: slow thinking and longer Wikipedia answers then move it equally per unit of log length, and H7's effect
    is 0 (the raw |log-ratio| difference was not: None→Detailed is 100x longer, 100→1000 words 10x)."""
    from layergrad.analysis.claims import claims_table
    from layergrad.studies import builtin_claims

    spec = next(c for c in builtin_claims() if c.id == claim_id)
    rng = np.random.default_rng(2)
    shape = np.array([3.0, 2.0, 2.5, 1.0, 1.5])
    groups = {"none": ("gsm8k", "reasoning", "none", 5), "detailed": ("gsm8k", "reasoning", "detailed", 500),
              "w100": ("wiki", "wiki", "popular-100", 130), "w1000": ("wiki", "wiki", "popular-1000", 1300)}
    metrics, prompts, lengths, attributes = {"nuclear_norm": {}}, {}, {}, {}
    for group, (task, family, style, length) in groups.items():
        ids = [f"{group}{i}" for i in range(10)]
        tokens = np.round(length * rng.uniform(0.8, 1.25, 10))
        metrics["nuclear_norm"][(group, "q_proj")] = pd.DataFrame(np.outer(tokens ** -0.5, shape), index=ids)
        prompts[group] = pd.Series([f"{task} prompt {i}" for i in range(10)], index=ids)
        lengths[group] = pd.Series(tokens, index=ids)
        attributes[group] = {"task": task, "family": family, "style": style, "variant": "correct"}
    table = claims_table([spec], attributes, metrics, prompts, lengths, 100, 0)
    row = table[(table.module == "q_proj") & (table.task == "wiki")].iloc[0]
    assert row.effect == pytest.approx(0.0, abs=0.02 if claim_id == "H7a" else 1e-9)


def test_the_tables_are_the_same_on_one_core_and_on_several(tiny_run, monkeypatch):
    """Every metric's tables, every pair's separability and every draw of the claims are jobs of their own with their
    own generators: forked over two processes or run one after another here, the analysis is the same."""
    from layergrad.analysis import parallel

    tables = {}
    for workers in (1, 2):
        monkeypatch.setattr(parallel, "cores", lambda w=workers: w)
        result = layergrad.analyze(tiny_run, n_boot=50, draws=4, log=lambda *a: None)
        tables[workers] = {name: getattr(result, name) for name in ("curves", "differences", "tests", "auroc",
                                                                    "increment", "claims", "pooled")}
    for name, table in tables[1].items():
        pd.testing.assert_frame_equal(tables[2][name], table, check_exact=False, rtol=1e-12, atol=0, obj=name)
