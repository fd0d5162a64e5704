"""How stable a claims table's verdicts are: the whole table once more on random halves of the prompts, and per
row the share of those draws that give its verdict.

The draws run on every core (parallel.py). A draw keeps a random half of every prompt in the run (a sample
without one counts as its own), and every
condition keeps the samples of those prompts, so conditions that share prompts stay paired. Nothing is recomputed
but the claims (their tests, Holm over the draw's table, verdicts). A verdict that half the data gives back less
often than ``STABLE`` of the time is marked ``unstable``: it hangs on which samples were drawn. At half the size a
test has less power, so a 'holds' near its threshold is expected to waver; a stable 'holds' is one the data give
back at half their size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from layergrad.analysis.claims.randomization import Design
from layergrad.analysis.claims.testing import holm_thresholds

DRAWS = 20  # analyze --draws default
STABLE = 0.7  # a verdict given back by fewer draws than this share is unstable
KEY = ["claim", "task", "module"]
DRAW_RESAMPLES = 200  # bootstrap resamples in a draw (its CIs decide only an equivalence claim's 'fails')


def halves(ctx, draws: int, seed: int):
    """``draws`` random halves of the prompts (sample ids where none), each as a context restricted to them."""
    count = ctx.all_codes()
    rng = np.random.default_rng(seed + 7919)
    for d in range(draws):
        keep = np.zeros(count, dtype=bool)
        keep[rng.permutation(count)[:count // 2]] = True
        yield ctx.draw(keep, seed + 1000 + d, min(ctx.n_boot, DRAW_RESAMPLES))


def outcome(table: pd.DataFrame) -> pd.Series:
    """Per row (by claim, task, module): its verdict, and for a confounded one what its raw effect says too."""
    if table.empty:
        return pd.Series(dtype=object)
    words = table.verdict.astype(str) + np.where(table.verdict == "confounded",
                                                 " (" + table.raw_verdict.fillna("").astype(str) + ")", "")
    out = pd.Series(words.to_numpy(), index=pd.MultiIndex.from_frame(table[KEY]))
    return out[~out.index.duplicated()]


def with_stability(table: pd.DataFrame, table_of, ctx, draws: int, seed: int) -> pd.DataFrame:
    """``table`` with ``stability`` (the share of the halves computing the row whose table gives it its verdict — for a
    confounded row, with the same raw verdict; none where fewer than half the draws can compute it) and
    ``unstable`` (stability below ``STABLE``)."""
    if table.empty:
        return table
    from layergrad.analysis.parallel import forked_map

    wanted = outcome(table)
    found = np.array(forked_map(lambda half: outcome(table_of(half)).reindex(wanted.index).to_numpy(dtype=object),
                                list(halves(ctx, draws, seed))))
    computed = np.array([[isinstance(v, str) and not v.startswith("not-applicable") for v in draw] for draw in found])
    same = (found == wanted.to_numpy(dtype=object)[None]).sum(0)
    count = computed.sum(0)
    out = table.copy()
    tested = (out.verdict != "not-applicable").to_numpy() & ~undecidable_at_half(out) & (count >= draws / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["stability"] = np.where(tested, same / count, np.nan)
    out["unstable"] = np.where(tested, out.stability < STABLE, False)
    return out


def undecidable_at_half(table: pd.DataFrame) -> np.ndarray:
    """Rows that hold or fail (raw, for a confounded one) whose test at half the samples could not pass its Holm
    level even at its most extreme arrangement (its exact floor lies above it): a half says nothing of them, so
    they get no stability rather than 'unstable'."""
    p = table.p.to_numpy(dtype=float)
    levels = holm_thresholds(p, np.isfinite(p))
    decided = table.verdict.isin(["holds", "fails"]) | table.raw_verdict.isin(["holds", "fails"])
    paired = table.test.astype(str).str.contains("sign-flip|bootstrap", regex=True).to_numpy()
    floors = np.array([Design(bool(pr), max(int(n) // 2, 1), max(int(n) // 2, 1)).floor if np.isfinite(n) else 0.0
                       for n, pr in zip(table.n.to_numpy(dtype=float), paired)])
    return decided.to_numpy() & np.isfinite(levels) & (floors >= levels)
