"""Evidence pooled over a study's cells (claims/pooling.py) and the stability of verdicts over random halves
(claims/stability.py)."""

import numpy as np
import pandas as pd
import pytest

from layergrad.analysis.claims.pooling import pooled_table, random_effects


def test_random_effects_by_hand():
    """DerSimonian-Laird against the textbook formulas on three studies."""
    y, se = np.array([0.1, 0.3, -0.05]), np.array([0.05, 0.08, 0.06])
    w = 1 / se ** 2
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = max(0, (q - 2) / (w.sum() - (w ** 2).sum() / w.sum()))
    ws = 1 / (se ** 2 + tau2)
    mu, mu_se, got_tau2, i2 = random_effects(y, se)
    assert mu == pytest.approx((ws * y).sum() / ws.sum()) and mu_se == pytest.approx(ws.sum() ** -0.5)
    assert got_tau2 == pytest.approx(tau2) and i2 == pytest.approx((q - 2) / q)
    assert random_effects(np.array([0.2, 0.2]), np.array([0.1, 0.1]))[2:] == (0.0, 0.0)  # no heterogeneity


def claim_rows(effects, verdicts, los=None, his=None):
    n = len(effects)
    effects = np.array(effects, dtype=float)
    return pd.DataFrame({"claim": "H1", "task": [f"t{i}" for i in range(n)], "module": "q_proj", "statement": "s",
                         "verdict": verdicts, "effect": effects, "ci_low": los or list(effects * 1.1 - 0.02),
                         "ci_high": his or list(effects * 0.9 + 0.02), "effect_kind": "relative change of the mean",
                         "rests_on": "raw effect", "adjusted": np.nan, "adjusted_low": np.nan, "adjusted_high": np.nan,
                         "p": 0.01})


def test_pooling_leaves_confounded_cells_out_and_says_so():
    table = pooled_table(claim_rows([-0.3, -0.25, -0.9], ["holds", "holds", "confounded"]), {"H1": -1})
    row = table.iloc[0]
    assert (row.tasks, row.pooled_tasks, row.confounded_tasks) == (3, 2, 1)
    assert row.verdict == "holds" and -0.3 < row.effect < -0.25 and row.ci_high < 0
    alone = pooled_table(claim_rows([-0.9, -0.8], ["confounded", "confounded"]), {"H1": -1}).iloc[0]
    assert alone.verdict == "confounded" and alone.raw_verdict == "holds" and alone.pooled_tasks == 0


def test_pooling_needs_two_cells():
    assert pooled_table(claim_rows([-0.3], ["holds"]), {"H1": -1}).empty


def test_stability_marks_a_verdict_half_the_data_do_not_give_back():
    """Two conditions whose difference is just significant with all 40 pairs: at half the pairs it often is not —
    unstable; a large effect is given back by every half — stable."""
    from layergrad.analysis import claims
    from layergrad.studies.schema import ClaimSpec

    rng = np.random.default_rng(3)
    metrics, prompts = {"nuclear_norm": {}}, {}
    for g, shift in (("a", 0.0), ("b", 0.09), ("c", 1.0)):
        ids = [f"{g}{i}" for i in range(40)]
        base = np.random.default_rng(4).lognormal(0, 0.3, (40, 1))  # the prompts' own levels, shared
        metrics["nuclear_norm"][(g, "q_proj")] = pd.DataFrame(base * np.exp(shift + rng.normal(0, 0.2, (40, 3))),
                                                              index=ids)
        prompts[g] = pd.Series(range(40), index=ids)
    specs = [ClaimSpec(f"{x} vs a", "s", compare={"condition": [x, "a"]}, direction="two-sided", confounds=())
             for x in ("b", "c")]
    table = claims.claims_table(specs, {g: {"condition": g} for g in "abc"}, metrics, prompts, {}, 200, 0, draws=20)
    rows = table[table.module == "q_proj"].set_index("claim")
    assert rows.loc["c vs a"].verdict == "holds" and rows.loc["c vs a"].stability == 1.0
    assert rows.loc["b vs a"].verdict == "holds" and rows.loc["b vs a"].unstable
