"""The built-in claim kinds: the vocabulary a study's claims are built from, each one decorated function, one
module per family: pairs.py (difference, mad_change, largest, auroc_difference), relative.py (rd_difference),
length.py (thinking_vs_length, separation_vs_length), runs.py (between two runs), cosines.py (near_zero);
shared.py (options, selectors, resampled curves), confounds.py (the confounds of a row and its adjusted effect).

A kind is registered with ``@claim_kind(name, needs=..., options=<dataclass>, ...)`` (studies/registry.py):
which conditions it needs (selectors of attributes, for the 'n/a: needs ...' rows), the options a claim of
it may give (checked when a study is read), which rows it has (modules, or its own labels) and its
statistic for one row, ``(ctx, spec, on, row)`` -> effect, 95% bootstrap CI, p, the effect's wording and
n (``on``: the cell, the reference cells and, between runs, the second run's cell). Every statistic draws
from the context's generator in table order, so a table is reproducible from its seed.

- ``difference``: relative change of the per-sample mean of a statistic over a layer scope, first vs
  second; an equivalence claim: two one-sided randomization tests against the relative margin;
- ``mad_change``: relative change of the MAD of the mean curve over the scope;
- ``rd_difference``: the gap of the first to its partner minus the second's, the partners chosen by
  ``options.within`` (e.g. correct vs irrelevant responses), per prompt and free of the statistic's level;
- ``thinking_vs_length`` / ``separation_vs_length``: |log-ratio| (of the early-layer mean or of the
  MAD) / RD gain of a reference pair in the run's reference cells (``options.reference``) against the
  same of this pair;
- ``auroc_difference``: AUROC of one statistic minus that of another for separating the two, on the
  same stratified resamples (``options.statistics``);
- ``largest``: a condition's mean against the largest of every other condition in the run;
- ``near_zero``: the mean cosine within ±margin (two one-sided tests), a row per cosine the run has;
- between two runs: ``gap_between_runs`` (|log-ratio| of a pair, second run minus first),
  ``rd_between_runs`` (RD of a pair), ``pattern_agreement`` (Spearman ρ of the curves over relative depth).

p-values come from one family of tests (randomization.py): a sign-flip test on shared prompts, else a studentized
label permutation, of the kind's own statistic, with the design's exact floor; the kinds that compare contrasts of
different cells or runs (no exchange of rows is a null for them) use the bootstrap with the same floor. A row of
two conditions names its confounds (confounds.py): where the design cannot separate the contrast from them its
verdict is ``confounded``; where it can, the verdict rests on the effect at equal confounds.
"""

from layergrad.analysis.claims.kinds import cosines, length, pairs, relative, runs  # noqa: F401  (they register)
from layergrad.analysis.claims.kinds.shared import (RUN_PAIRINGS, layer_mean, pair_needs, partners, sides,
                                                    within_pair)

__all__ = ["RUN_PAIRINGS", "layer_mean", "pair_needs", "partners", "sides", "within_pair"]
