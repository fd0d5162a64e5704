"""The extension points are registries: a new claim kind is one decorated function (CONTRIBUTING.md's worked
example, here with its test), a taken name is refused, an unknown one lists the valid ones, and the options
a claim gives are checked against the kind's dataclass."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from layergrad.errors import InputError
from layergrad.registry import Registry, TakenName
from layergrad.studies import ClaimSpec
from layergrad.studies.registry import CAVEATS, CLAIM_KINDS, STUDIES, ClaimOptions, claim_kind


def test_a_taken_name_is_refused_and_an_unknown_one_lists_the_valid_ones():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(TakenName, match="widget 'a' is already registered"):
        registry.register("a", 2)
    assert registry.register("a", 3, replace=True) == 3
    with pytest.raises(InputError, match=r"unknown widget 'b'\. Valid: a"):
        registry.get("b")
    with pytest.raises(TakenName):
        CLAIM_KINDS.register("difference", CLAIM_KINDS.get("difference"))
    assert {"difference", "largest", "near_zero", "pattern_agreement"} <= set(CLAIM_KINDS.names())
    assert {"controls", "length", "none"} <= set(CAVEATS.names()) and {"paper", "followup"} <= set(STUDIES.names())


# --- the worked example of CONTRIBUTING.md: a claim kind in one decorated function --------------------------

@dataclass(frozen=True, kw_only=True)
class QuantileOptions(ClaimOptions):
    quantile: float = 0.5  # which quantile of the per-sample means


def quantile_change(ctx, spec, on, module):
    """Relative change of a quantile of the per-sample means, first vs second; bootstrap p."""
    from layergrad.analysis.claims.kinds import layer_mean, sides
    from layergrad.analysis.claims.testing import summary

    a, b = (on.cell.one(s) for s in sides(spec))
    pair = ctx.pair(a, b, module, spec.statistic, "no")
    if pair is None:
        return None
    x, y = (layer_mean(m, spec.layers) for m in pair[:2])
    q = spec.options.quantile
    xs = x[ctx.rng.integers(0, len(x), (ctx.n_boot, len(x)))]
    ys = y[ctx.rng.integers(0, len(y), (ctx.n_boot, len(y)))]
    draws = np.quantile(ys, q, axis=1) / np.quantile(xs, q, axis=1) - 1
    return summary(np.quantile(y, q) / np.quantile(x, q) - 1, draws, f"relative change of the {q:g} quantile",
                   min(len(x), len(y)))


@pytest.fixture
def quantile_kind():
    from layergrad.analysis.claims.kinds import pair_needs

    claim_kind("quantile_change", needs=pair_needs, options=QuantileOptions)(quantile_change)
    yield "quantile_change"
    CLAIM_KINDS.remove("quantile_change")


def two_conditions(shift: float):
    rng = np.random.default_rng(0)
    ids = {side: [f"{side}{i}" for i in range(12)] for side in ("low", "high")}
    metrics = {"nuclear_norm": {(side, "q_proj"): pd.DataFrame(rng.normal(10 + (shift if side == "high" else 0), 0.5,
                                                                         (12, 4)), index=ids[side])
                                for side in ids}}
    prompts = {side: pd.Series([f"{side} prompt {i}" for i in range(12)], index=ids[side]) for side in ids}
    attributes = {side: {"quality": side} for side in ids}
    return attributes, metrics, prompts


def test_a_new_claim_kind_is_one_decorated_function(quantile_kind):
    from layergrad.analysis.claims import claims_table

    spec = ClaimSpec(id="Q1", statement="High quality has a larger median nuclear norm", kind=quantile_kind,
                     compare={"quality": ["high", "low"]}, direction="greater", options={"quantile": 0.5})
    attributes, metrics, prompts = two_conditions(shift=3.0)
    table = claims_table([spec], attributes, metrics, prompts, {}, 200, 0, whole="all")
    row = table[table.module == "q_proj"].iloc[0]
    assert row.verdict == "holds" and row.effect == pytest.approx(0.3, abs=0.05)
    assert "quantile" in row.definition  # the kind's docstring describes it
    with pytest.raises(InputError, match="unknown option 'quantil' of a quantile_change claim with caveat controls. Did you mean 'quantile'"):
        ClaimSpec(id="Q2", statement="-", kind=quantile_kind, compare={"quality": ["high", "low"]},
                  options={"quantil": 0.9})


def test_a_kind_without_its_required_option_is_refused():
    with pytest.raises(InputError, match="a rd_difference claim needs options.within"):
        ClaimSpec(id="R", statement="-", kind="rd_difference", compare={"quality": ["high", "low"]})
