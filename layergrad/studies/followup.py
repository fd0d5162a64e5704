"""The follow-up paper's study (arXiv 2504.10766), declared like any study: every (metric, pool) high-vs-low
pair of its data folder found by the layout (data/followup.py), its two R1 reasoning-trace sets, and the
first paper's GSM8K None / Detailed CoT as the carry-over (when the paper's data is at hand); claims F1-F6,
plus the first paper's claims for the carry-over task.

- F1 high quality gives a lower nuclear norm, F2 a higher effective rank (relative change of the
  per-sample mean over the early, middle and late layers, a verdict each, high vs low; label permutation:
  different records);
- F3 the effective rank separates high from low better than the nuclear norm (AUROC of each in its
  claimed direction, the same stratified bootstrap resamples for both);
- F4 the s1.1 traces give the largest effective rank of all the run's data: on the whole samples, and at equal
  truncation (where the run has the traces, every condition again as ``<name>@first256``, each response cut to its
  first 256 tokens and those with fewer skipped: task ``first256``, family ``budget``, compared only with each other);
- F5 (``compare`` of two runs) layer-wise patterns agree: Spearman ρ of the two models' mean curves
  over relative depth (the caveat says the claim is about one model family);
- F6 same-layer (q×o, k×v) and adjacent-layer gradient cosines stay near zero: holds when the mean
  cosine lies within the range the same cosine takes between unrelated samples' gradients (95% of the shuffled
  pairs: each sample with the next of its batch; two one-sided tests), fails when its CI lies outside; a run
  without shuffled pairs falls back to ±0.1.

F1-F3 carry the length overlap, the AUROC of length, loss and IFD beside the gradient's, what the profile
adds beyond them, and for F1/F2 the same contrast under random weights (``--reinit``).
"""

from __future__ import annotations

from layergrad.data.attributes import attributes_of
from layergrad.errors import InputError, did_you_mean
from layergrad.studies.paper import CLAIMS as PAPER_CLAIMS
from layergrad.studies.paper import LABELS as PAPER_LABELS
from layergrad.studies.paper import claim
from layergrad.studies.registry import GridFigure, StudyHooks, register_study
from layergrad.studies.schema import Condition, Study

MARGIN = 0.1  # |cosine| below this is "near zero" (F6) where a run has no shuffled pairs to hold it against
MAX_LENGTH = 2048  # the follow-up's scripts (its README runs 4096)
FIRST = 256  # F4 at equal truncation: every condition again, each response cut to its first FIRST tokens
BUDGET_TASK = f"first{FIRST}"
QUALITY = {"family": "quality"}
LABELS = {**PAPER_LABELS, "quality": "", "traces": "", "budget": ""}


CLAIMS = (
    claim("F1", "High-quality data gives lower nuclear norms than low-quality data",
          "Relative change of the per-sample mean nuclear norm over the early, the middle and the late layers (a row and "
          "a verdict each), high vs low subset of a (metric, pool) cell (negative = holds); label permutation of the "
          "log ratio of the means (different records).", "difference", {"quality": ["high", "low"]},
          "less", where=QUALITY, paired="no", caveat="controls", options={"reinit": True, "by_segment": True}),
    claim("F2", "High-quality data gives higher effective ranks than low-quality data",
          "Relative change of the per-sample mean effective rank over the early, the middle and the late layers, high "
          "vs low (positive = holds); label permutation.", "difference", {"quality": ["high", "low"]}, "greater",
          statistic="effective_rank", where=QUALITY, paired="no", caveat="controls",
          options={"reinit": True, "by_segment": True}),
    claim("F3", "Effective rank separates high from low quality better than nuclear norm",
          "AUROC of the per-sample mean effective rank (higher in high) minus that of the nuclear norm (lower in high), "
          "the same stratified bootstrap resamples for both for the CI, the two statistics' ranks swapped sample by sample "
          "for p (positive = holds).", "auroc_difference",
          {"quality": ["high", "low"]}, "greater", where=QUALITY,
          caveat="controls", options={"statistics": [["effective_rank", 1], ["nuclear_norm", -1]], "reinit": False}),
    claim("F4", "Reasoning data (s1.1 R1 traces) gives the largest effective ranks of all the data",
          "Relative difference of the s1.1 traces' mean effective rank (all layers) to that of the run's condition with "
          "the next largest (positive = holds); label permutation. Once on the whole samples (task 'reasoning') and "
          f"once at equal truncation (task '{BUDGET_TASK}'): every condition cut to its responses' first {FIRST} "
          "tokens, those with fewer skipped, since a T-token gradient's rank is at most T.", "largest",
          {"trace": ["s1-r1"]}, "greater", statistic="effective_rank", where={"family": ["traces", "budget"]},
          caveat="traces",
          options={"effect_kind": "relative difference of the mean effective rank, s1 traces vs the largest other"}),
    claim("F5", "Within a model family the layer-wise patterns agree across sizes; across families they differ",
          "Spearman ρ of the two runs' mean effective-rank curves over relative depth, per cell and module "
          "(positive = the patterns agree); bootstrap over each run's samples.", "pattern_agreement",
          {"quality": ["high"]}, "greater", statistic="effective_rank", where=QUALITY, test="bootstrap",
          caveat="family", options={"effect_kind": "Spearman ρ of the two models' mean effective-rank curves over "
                                                   "relative depth (high subset)"}),
    claim("F6", "Same-layer (q×o, k×v) and adjacent-layer gradient cosines stay near zero for every kind of data",
          "Mean cosine of the flattened gradients (per sample over layers, then over samples) within the range of the same "
          "cosine between unrelated samples (each with the next sample of its batch; 95% of them): two one-sided "
          f"sign-flip tests (holds), the CI outside it (fails); ±{MARGIN} where the run has no shuffled pairs.",
          "near_zero", {}, "equivalent", margin=MARGIN,
          where={"family": ["quality", "traces"]}, caveat="cosine",
          options={"label_by": ["quality", "trace"]}),
)
ALL_CLAIMS = PAPER_CLAIMS + CLAIMS  # the carry-over task is judged by the first paper's claims too


def grid(followup_data: str | None = None, paper_data: str | None = None, tasks=None,
         notes: list[str] | None = None) -> dict[str, dict[str, str]]:
    """{task: {condition: source}}: '<metric>/<pool>' -> its high and low files, 'reasoning' -> the R1 traces,
    'gsm8k' -> the first paper's None / Detailed CoT; ``notes`` gets a line for every file the layout expects
    but the folder lacks."""
    from layergrad.data.followup import layout
    from layergrad.data.paper import paper_file

    notes = notes if notes is not None else []
    found = layout(followup_data)
    notes += found.missing
    cells = {f"{metric}/{pool}": {f"{metric}/{pool}/{side}": str(path) for side, path in files.items()}
             for (metric, pool), files in found.pairs.items()}
    if found.reasoning:
        cells["reasoning"] = {f"reasoning/{name}": str(path) for name, path in found.reasoning.items()}
    try:
        for style in ("none", "detailed"):
            paper_file(f"gsm8k/{style}", paper_data)
        cells["gsm8k"] = {f"gsm8k/{style}": f"paper:gsm8k/{style}" for style in ("none", "detailed")}
    except InputError as exc:
        notes.append(f"the carry-over GSM8K None / Detailed CoT is left out: {exc}")
    if tasks:
        unknown = [t for t in tasks if t not in cells]
        if unknown:
            raise InputError(f"unknown task '{unknown[0]}'.{did_you_mean(unknown[0], cells)} Tasks: {', '.join(cells)}")
        cells = {t: c for t, c in cells.items() if t in tasks}
    return cells


def figures(study: Study, analysed: list[str], config) -> list[GridFigure]:
    """A row per (metric, pool) cell, high and low side by side, a line per module; one figure for the nuclear
    norm and one for the effective rank."""
    names = {c.name for c in study.conditions}
    tasks = [t for t in analysed if {f"{t}/high", f"{t}/low"} <= names]
    if not tasks:
        return []
    return [GridFigure(f"followup_{metric}", metric, [(t, [f"{t}/high", f"{t}/low"]) for t in tasks], ["high", "low"],
                       "High vs low quality: mean {metric} per layer and module")
            for metric in ("nuclear_norm", "effective_rank")]


def quality_pairs(study: Study) -> list[str]:
    """The conditions the random-weights control runs again: the quality pairs."""
    return [c.name for c in study.conditions if c.attributes.get("family") == "quality"]


def compute_defaults(options):
    """IFD and the cosines on; at most ``MAX_LENGTH`` tokens in the paper-compatible mode (else the model's)."""
    from dataclasses import replace

    length = options.max_length or (MAX_LENGTH if options.paper else None)
    return replace(options, ifd=True, cosine=True, max_length=length)


HOOKS = StudyHooks(figures=figures, control=quality_pairs, reinit=True, compute=compute_defaults,
                   data_flag="--followup-data DIR")


def followup_study(followup_data: str | None = None, paper_data: str | None = None, tasks=None, **unused) -> Study:
    """The follow-up's study on the data folder's layout (or the public folder, downloaded once)."""
    notes: list[str] = []
    cells = grid(followup_data, paper_data, tasks, notes)
    conditions = tuple(Condition(name, source, attributes_of(source))
                       for task in cells.values() for name, source in task.items())
    if "reasoning" in cells:  # F4 at equal truncation
        conditions += tuple(Condition(f"{c.name}@{BUDGET_TASK}", f"{c.source}#first={FIRST}",
                                      {**c.attributes, "task": BUDGET_TASK, "family": "budget", "first": str(FIRST)})
                            for c in conditions)
    return Study("followup", conditions, ALL_CLAIMS, LABELS, tuple(notes), hooks=HOOKS)


register_study("followup", followup_study, claims=ALL_CLAIMS, labels=LABELS)
