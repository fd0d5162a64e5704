"""Every test kind of the claims, calibrated under the null by simulation: data with no effect but the nuisances real
runs have — two sides at very different levels (None CoT's nuclear norms are 10-20x Detailed CoT's), unequal
spreads and sizes, lengths that follow a law other than a power, prompts that cluster — and the share of p < 0.05
must lie in [3%, 7%] over 1,000 draws (a test that rejects 10% of the time under the null turns noise into
'holds'). Each kind is run through its own code (the claim kind's statistic on a simulated cell), so the CI and
the test a row reports are the ones checked. And where there is an effect, the CI excludes 0 where, and only
where, the test rejects (up to resampling noise near the threshold)."""

import numpy as np
import pandas as pd
import pytest

from layergrad.analysis.claims import randomization as rz
from layergrad.analysis.claims.context import Cell, Context, Where
from layergrad.analysis.claims.kinds import pairs, relative
from layergrad.analysis.claims.testing import summary
from layergrad.studies import builtin_claims
from layergrad.studies.schema import ClaimSpec

DRAWS = 1000
LOW, HIGH = 0.03, 0.07
pytestmark = pytest.mark.slow

CLAIMS = {c.id: c for c in builtin_claims()}


def cell(groups: dict, lengths: dict | None = None, n_boot: int = 200, seed: int = 0) -> tuple[Context, Cell]:
    """A context and cell of simulated groups: {name: (attributes, samples x layers array, prompts)}."""
    metrics, prompts, attributes = {"nuclear_norm": {}}, {}, {}
    for name, (attrs, values, prompt_ids) in groups.items():
        ids = [f"{name}:{i}" for i in range(len(values))]
        metrics["nuclear_norm"][(name, "q_proj")] = pd.DataFrame(values, index=ids)
        prompts[name] = pd.Series(prompt_ids, index=ids)
        attributes[name] = attrs
    covariates = {"length": {g: pd.Series(v, index=prompts[g].index) for g, v in (lengths or {}).items()}}
    ctx = Context(metrics, prompts, n_boot, np.random.default_rng(seed), covariates=covariates,
                  arrangements=np.random.default_rng(seed + 1))
    return ctx, Cell("task", attributes, None)


def reasoning(style: str, variant: str = "correct") -> dict:
    return {"style": style, "variant": variant, "family": "reasoning"}


def rejection_rate(draw, draws: int = DRAWS) -> float:
    """The share of draws whose p < 0.05 (a draw that returns None — its design not identified — left out)."""
    p = np.array([draw(np.random.default_rng(i)) for i in range(draws)], dtype=float)
    assert np.isfinite(p).sum() >= 0.95 * draws
    return float(np.mean(p[np.isfinite(p)] < 0.05))


def curves(rng, n: int, level, spread: float, layers: int = 12, hump: float = 0.5) -> np.ndarray:
    """Per-sample curves of one shape (a hump over depth) at a level (per sample, or one for all), each sample's own
    scale and layer noise."""
    shape = 1 + hump * np.sin(np.linspace(0, np.pi, layers))
    level = np.reshape(level, (-1, 1))
    return level * shape * rng.lognormal(0, spread, (n, 1)) * rng.lognormal(0, 0.1, (n, layers))


def test_sign_flip_of_a_change_of_means_keeps_its_level_with_unequal_spreads():
    """H1's test (paired): Detailed at the same mean as None, its samples five times as spread."""
    def draw(rng):
        n = 30
        prompt = rng.lognormal(0, 0.3, n)  # a prompt's own level, shared by its two samples
        none = prompt[:, None] * rng.lognormal(-0.02, 0.2, (n, 6))
        detailed = prompt[:, None] * rng.lognormal(-0.5, 1.0, (n, 6))  # the same mean: exp(-0.5 + 1/2)
        ctx, c = cell({"n": (reasoning("none"), none, range(n)), "d": (reasoning("detailed"), detailed, range(n))})
        return pairs.difference(ctx, CLAIMS["H1"], Where(c), "q_proj")["p"]
    assert LOW <= rejection_rate(draw) <= HIGH


@pytest.mark.parametrize("sizes", [(30, 30), (40, 20)])
def test_label_permutation_is_studentized_for_unequal_spreads(sizes):
    """Two sets of different records, one side's per-sample values four times as spread (log-sd 0.3 against 0.08;
    real runs: 0.04-0.2) — equal sizes, and the noisy side the larger one. (Where the noisy side is the *smaller*
    one, a studentized permutation test runs hot at these sizes: ~8% at 20 against 40; docs/guide/analysis.md.)"""
    spec = ClaimSpec("X", "x", compare={"side": ["b", "a"]}, direction="two-sided", paired="no", confounds=())
    n_a, n_b = sizes

    def draw(rng):
        a = rng.lognormal(-0.045, 0.3, (n_a, 4))  # mean 1
        b = rng.lognormal(-0.0032, 0.08, (n_b, 4))  # mean 1
        ctx, c = cell({"a": ({"side": "a"}, a, range(n_a)), "b": ({"side": "b"}, b, range(100, 100 + n_b))})
        return pairs.difference(ctx, spec, Where(c), "q_proj")["p"]
    assert LOW <= rejection_rate(draw) <= HIGH


@pytest.mark.parametrize("paired", [True, False])
def test_flatness_test_keeps_its_level_when_one_curve_is_20x_higher(paired):
    """H2 under the null: both styles' curves have the same shape, None's 20x higher and its samples' scales more
    spread. Exchanging raw rows would widen the null by the levels (conservative); the rows divided by their side's
    level keep it, and the CI agrees with the test."""
    spec = CLAIMS["H2"] if paired else ClaimSpec("X", "x", kind="mad_change", compare={"style": ["detailed", "none"]},
                                                direction="two-sided", paired="no", confounds=())

    def draw(rng):
        n = 30
        none, detailed = curves(rng, n, 20.0, 0.5), curves(rng, n, 1.0, 0.15)
        ids = range(n), (range(n) if paired else range(100, 100 + n))
        ctx, c = cell({"n": (reasoning("none"), none, ids[0]), "d": (reasoning("detailed"), detailed, ids[1])})
        return pairs.mad_change(ctx, spec, Where(c), "q_proj")["p"]
    assert LOW <= rejection_rate(draw) <= HIGH


def test_the_gap_to_irrelevant_responses_keeps_its_level_with_unequal_levels_and_spreads():
    """H5 under the null: irrelevant responses move both styles by the same expected share (+5%), None at 20x the
    level with per-prompt gaps of spread 0.02, Detailed with 0.3: the old test of the net RD of mean curves
    rejected 75% of the time here."""
    def draw(rng):
        n = 30
        groups = {}
        for style, level, spread in (("none", 20.0, 0.02), ("detailed", 1.0, 0.3)):
            correct = curves(rng, n, level, 0.3)
            gap = np.log(1.05) + rng.normal(0, spread, (n, 1))
            groups[style] = (reasoning(style), correct, range(n))
            groups[f"{style}@i"] = (reasoning(style, "irrelevant"), correct * np.exp(gap), range(n))
        ctx, c = cell(groups)
        return relative.rd_difference(ctx, CLAIMS["H5"], Where(c), "q_proj")["p"]
    assert LOW <= rejection_rate(draw) <= HIGH


def length_law(rng, lengths: np.ndarray) -> np.ndarray:
    """A statistic that falls with length as 1 + 30 / T (not a power of T), times noise, on 4 layers."""
    return (1 + 30 / lengths)[:, None] * rng.lognormal(0, 0.15, (len(lengths), 4))


def test_paired_adjustment_keeps_its_level_under_a_law_other_than_a_power():
    """The effect at equal length (paired, Freedman-Lane sign flips) when the statistic follows 1 + c/T and the
    second side's responses are up to 40% longer (most pairs within the gate's 25%)."""
    def draw(rng):
        n = 30
        lx = rng.integers(20, 300, n).astype(float)
        ly = lx * rng.uniform(0.85, 1.4, n)
        ctx, c = cell({"n": (reasoning("none"), length_law(rng, lx), range(n)),
                       "d": (reasoning("detailed"), length_law(rng, ly), range(n))}, {"n": lx, "d": ly}, n_boot=50)
        row = pairs.difference(ctx, CLAIMS["H1"], Where(c), "q_proj")
        return row["p"] if row["rests_on"].startswith("adjusted") else None  # the gate failed (rarely): left out
    assert LOW <= rejection_rate(draw) <= HIGH


def test_unpaired_adjustment_is_studentized():
    """Different records at equal length have no difference; the sides differ in length and one is four times as
    noisy: the studentized Freedman-Lane test keeps its level."""
    spec = ClaimSpec("X", "x", compare={"side": ["b", "a"]}, direction="two-sided", paired="no")

    def draw(rng):
        la, lb = rng.integers(20, 200, 30).astype(float), rng.integers(30, 300, 30).astype(float)
        a = length_law(rng, la) * rng.lognormal(0, 0.6, (30, 1))
        b = length_law(rng, lb)
        ctx, c = cell({"a": ({"side": "a"}, a, range(30)), "b": ({"side": "b"}, b, range(100, 130))},
                      {"a": la, "b": lb}, n_boot=50)
        row = pairs.difference(ctx, spec, Where(c), "q_proj")
        return row["p"] if row["rests_on"].startswith("adjusted") else None
    assert LOW <= rejection_rate(draw) <= HIGH


def test_pooled_sides_are_tested_by_prompt():
    """A side pooling two conditions of the same prompts (both high-quality subsets, say): each prompt's samples are
    averaged into one unit, so strongly clustered prompts do not make the test liberal (rows exchanged one by one
    reject ~25% of the time here)."""
    spec = ClaimSpec("X", "x", compare={"side": ["b", "a"]}, direction="two-sided", confounds=())

    def draw(rng):
        n = 15
        groups = {}
        for side, ids in (("a", range(n)), ("b", range(100, 100 + n))):
            prompt = rng.lognormal(0, 0.5, n)  # each prompt's own level, shared by its two conditions
            for k in (1, 2):
                groups[f"{side}{k}"] = ({"side": side, "k": str(k)}, prompt[:, None] * rng.lognormal(0, 0.1, (n, 3)), ids)
        ctx, c = cell(groups)
        c = Cell("task", c.attributes, ctx)  # sides that match two conditions each are pooled
        return pairs.difference(ctx, spec, Where(c), "q_proj")["p"]
    assert LOW <= rejection_rate(draw, 400) <= HIGH + 0.01  # 400 draws: a wider band of Monte Carlo error


def test_equivalence_keeps_its_level_at_the_margin():
    """Two one-sided tests, the true ratio exactly at the margin (10% apart), unequal spreads: at most alpha."""
    def draw(rng):
        x = rng.lognormal(0, 0.3, 30)
        y = x * 1.1 * rng.lognormal(-0.02, 0.2, 30)  # mean ratio 1.1
        return rz.equivalence_test(x, y, True, 0.1, rng).p
    assert rejection_rate(draw) <= HIGH


def test_the_rank_swap_of_two_aurocs_keeps_its_level():
    """F3's test: two statistics with the same AUROC for the labels, one much noisier in the other class."""
    def draw(rng):
        labels = np.r_[np.zeros(30), np.ones(30)].astype(int)
        first = labels * 0.8 + rng.normal(0, 1, 60)
        second = labels * 0.8 + rng.normal(0, 1, 60)
        return rz.paired_rank_test(labels, first, second, rng).p
    assert LOW <= rejection_rate(draw) <= HIGH


def test_the_bootstrap_p_of_contrasts_keeps_its_level():
    """The kinds that compare contrasts of different cells or runs: a difference of two independent means, one side
    three times as spread and half the size."""
    def draw(rng):
        a, b = rng.normal(0, 3, 15), rng.normal(0, 1, 30)
        draws = b[rng.integers(0, 30, (1000, 30))].mean(1) - a[rng.integers(0, 15, (1000, 15))].mean(1)
        return summary(b.mean() - a.mean(), draws, "difference", 15)["p"]
    assert LOW <= rejection_rate(draw) <= HIGH + 0.01  # a percentile bootstrap at 15 samples runs a little hot


def test_ci_and_test_agree():
    """Where there is an effect of every size, a row's CI excludes 0 where, and only where, its test rejects at 0.05 —
    up to the noise of resampling near the threshold (the disagreements have p within [0.01, 0.1])."""
    disagree = []
    for i in range(300):
        rng = np.random.default_rng(i)
        n = 30
        prompt = rng.lognormal(0, 0.3, n)  # a prompt's own level, shared by its two samples
        none = curves(rng, n, 20 * prompt, 0.1)
        detailed = curves(rng, n, prompt * np.exp(rng.uniform(-0.1, 0.1)), 0.1, hump=0.5 + rng.uniform(-0.1, 0.1))
        ctx, c = cell({"n": (reasoning("none"), none, range(n)), "d": (reasoning("detailed"), detailed, range(n))},
                      n_boot=1000)
        for row in (pairs.difference(ctx, CLAIMS["H1"], Where(c), "q_proj"),
                    pairs.mad_change(ctx, CLAIMS["H2"], Where(c), "q_proj")):
            excludes = row["ci_low"] > 0 or row["ci_high"] < 0
            if excludes != (row["p"] < 0.05):
                disagree.append(row["p"])
    assert len(disagree) <= 0.05 * 600 and all(0.005 <= p <= 0.15 for p in disagree)
