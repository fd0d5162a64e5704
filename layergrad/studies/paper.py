"""The first paper's study (arXiv 2410.23743), declared like any study: its grid of conditions and its
claims H1-H7 (docs/guide/paper-study.md), each a claim kind with parameters, evaluated per task.

The grid (docs/guide/how-it-works.md, "The data"): six reasoning tasks x None / Simplified / Detailed CoT, three MATH subjects x
Simplified / Detailed, Wikipedia popular articles at 100 / 500 / 1000 words and unpopular ones; every
condition also with the paper's irrelevant responses. Attributes come from the sources
(data/attributes.py): task, style, variant (correct | irrelevant), family (reasoning | wiki), group.
"""

from __future__ import annotations

from layergrad.data.attributes import attributes_of
from layergrad.data.paper import COT_TASKS, MATH_TASKS
from layergrad.errors import InputError, did_you_mean
from layergrad.studies.registry import GridFigure, StudyHooks, register_study
from layergrad.studies.schema import ClaimSpec, Condition, Study

GROUPS = {"cot": COT_TASKS, "math": tuple(MATH_TASKS), "wiki": ("wiki",)}
STYLES = {"cot": ("none", "simplified", "detailed"), "math": ("simplified", "detailed"),
          "wiki": ("popular-100", "popular-500", "popular-1000", "unpopular")}
LABELS = {"none": "None CoT", "simplified": "Simplified CoT", "detailed": "Detailed CoT", "correct": "",
          "irrelevant": "irrelevant", "reasoning": "", "wiki": ""}  # families are where a claim looks, not what it needs
REASONING = {"family": "reasoning", "variant": "correct"}
WIKI = {"family": "wiki", "variant": "correct"}
CORRECT_VS_IRRELEVANT = {"variant": ["correct", "irrelevant"]}
EARLY = {"effect_kind": "relative change of the early-layer mean"}
NONE_TO_DETAILED = {"where": REASONING, "compare": {"style": ["detailed", "none"]}}
LENGTH_CONTROL = {"reference": NONE_TO_DETAILED, "reference_words": "None→Detailed", "words": "popular 100→1000",
                  "reference_needs": "a reasoning task with None and Detailed CoT"}


def claim(id, statement, definition, kind, compare, direction, caveat="length", **more) -> ClaimSpec:
    """A claim of this study: evaluated per task, on nuclear norms, with the length caveat unless said otherwise."""
    return ClaimSpec(id=id, statement=statement, definition=definition, kind=kind, compare=compare,
                     direction=direction, per="task", caveat=caveat, **more)


CLAIMS = (
    claim("H1", "Early-layer nuclear norm: None > Detailed CoT",
          "Relative change of the per-sample mean nuclear norm over the early layers, Detailed vs None (negative = "
          "holds); sign-flip test of the log ratio of the means on shared prompts.", "difference",
          {"style": ["detailed", "none"]}, "less", layers="early", where=REASONING, options=EARLY),
    claim("H2", "MAD over all layers: None > Detailed CoT",
          "Relative change of the MAD of the mean nuclear-norm curve over all layers divided by the curve's mean (its "
          "flatness in its own scale: a curve only lower everywhere is not flatter), Detailed vs None (negative = "
          "holds: slow thinking gives a flatter curve); sign-flip test of the log ratio on shared prompts. The raw "
          "MAD, in the curve's units, falls with the level as H1 does (mad.csv has both).", "mad_change", {"style": ["detailed", "none"]},
          "less", where=REASONING),
    claim("H3a", "Early-layer nuclear norm: Simplified > Detailed CoT",
          "Relative change of the early-layer mean, Detailed vs Simplified (negative = holds); sign-flip test. The paper "
          "states it for MATH; on the other tasks it is the inferred None ≥ Simplified ≥ Detailed.", "difference",
          {"style": ["detailed", "simplified"]}, "less", layers="early", where=REASONING, options=EARLY),
    claim("H3b", "MAD over all layers: Simplified > Detailed CoT",
          "Relative change of the MAD over all layers divided by the curve's mean, Detailed vs Simplified (negative = "
          "holds); sign-flip test.",
          "mad_change", {"style": ["detailed", "simplified"]}, "less", where=REASONING),
    claim("H5", "Correct vs irrelevant differ more for Detailed than for None CoT (RD)",
          "Net RD(correct, irrelevant) = |mean over layers of (irrelevant - correct) / |correct|| of the mean "
          "nuclear-norm curves (noise that changes sign between layers averages out; options.rd: paper for the "
          "paper's mean of |.|), Detailed minus None (positive = holds), the prompts' four rows resampled together; "
          "sign-flip test on the prompts all four conditions share. The AUROC of loss, length and gradient is in the "
          "caveats.", "rd_difference",
          {"style": ["detailed", "none"]}, "greater", where=REASONING, caveat="separability",
          options={"within": CORRECT_VS_IRRELEVANT, "names": ["Detailed", "None"]}),
    claim("H7a", "Longer Wikipedia answers do not reproduce slow thinking's early-layer drop",
          "|log-ratio None→Detailed| (mean over the run's reasoning tasks) minus |log-ratio popular 100→1000 words| of "
          "the early-layer mean nuclear norm, each per unit of its log response-length ratio (None→Detailed is some "
          "100x longer, 100→1000 words some 9x: a nuclear norm that only fell as a power of length would change as "
          "much per unit in both; positive = holds: slow thinking moves it more than its length explains); bootstrap.",
          "thinking_vs_length", {"style": ["popular-1000", "popular-100"]}, "greater", where=WIKI, test="bootstrap",
          caveat="none", options={**LENGTH_CONTROL, "measure": "early"}),
    claim("H7b", "Longer Wikipedia answers do not reproduce slow thinking's flat curve",
          "The same comparison, per unit of log length, for the MAD over all layers divided by the curve's mean "
          "(positive = holds); bootstrap.", "thinking_vs_length",
          {"style": ["popular-1000", "popular-100"]}, "greater", where=WIKI, test="bootstrap", caveat="none",
          options={**LENGTH_CONTROL, "measure": "mad"}),
    claim("H7c", "Longer Wikipedia answers do not reproduce slow thinking's correct/irrelevant gap",
          "Net RD(correct, irrelevant) gain None→Detailed (mean over reasoning tasks) minus the gain popular 100→1000 "
          "(positive = holds); bootstrap.", "separation_vs_length", {"style": ["popular-1000", "popular-100"]},
          "greater", where=WIKI, test="bootstrap", caveat="none",
          options={**LENGTH_CONTROL, "within": CORRECT_VS_IRRELEVANT,
                   "reference": {**NONE_TO_DETAILED, "within": CORRECT_VS_IRRELEVANT}}),
    claim("H7d", "Popular and long-tail knowledge differ in early-layer nuclear norm",
          "Relative change of the early-layer mean, unpopular vs popular (100 words, the closest length); two-sided: "
          "the direction is reported, not claimed; label permutation (different articles).", "difference",
          {"style": ["unpopular", "popular-100"]}, "two-sided", layers="early", where=WIKI,
          options=EARLY),
    claim("H4", "The None-vs-Detailed gap is smaller for the base model than for the instruct model",
          "|log-ratio None→Detailed| of the early-layer mean nuclear norm, instruct minus base (positive = holds); each "
          "model's samples resampled on their own.", "gap_between_runs", {"style": ["detailed", "none"]}, "greater",
          where=REASONING, test="bootstrap", caveat="none",
          options={"words": "None→Detailed", "first_run": "base", "second_run": "instruct", "runs": "base vs instruct"}),
    claim("H6", "Correct vs irrelevant differ less for the instruct model than for the base model",
          "Net RD(correct, irrelevant) of the Detailed CoT curves, instruct minus base (negative = holds).",
          "rd_between_runs", {"style": ["detailed"]}, "less", where={"family": "reasoning"}, test="bootstrap",
          caveat="none", options={"within": CORRECT_VS_IRRELEVANT, "words": "Detailed", "first_run": "base",
                                  "second_run": "instruct", "runs": "base vs instruct"}),
)


def grid(groups=("cot", "math", "wiki"), tasks=None) -> dict[str, dict[str, str]]:
    """{task: {condition: source}}: every cell of the paper's grid for the groups (and tasks) asked."""
    for name in groups:
        if name not in GROUPS:
            raise InputError(f"unknown group '{name}'.{did_you_mean(name, GROUPS)} Groups: {', '.join(GROUPS)}")
    known = [t for g in groups for t in GROUPS[g]]
    for task in tasks or ():
        if task not in known:
            raise InputError(f"unknown task '{task}' in groups {', '.join(groups)}.{did_you_mean(task, known)}"
                             f" Tasks: {', '.join(known)}")
    out = {}
    for group in groups:
        for task in GROUPS[group]:
            if tasks and task not in tasks:
                continue
            out[task] = {f"{task}/{style}{variant}": f"paper:{task}/{style}{variant}"
                         for style in STYLES[group] for variant in ("", "@irrelevant")}
    return out


def figures(study: Study, analysed: list[str], config) -> list[GridFigure]:
    """One figure per group in the paper's layout: a row per task, a panel per style, a line per module."""
    out = []
    for group in config.groups:
        tasks = [t for t in GROUPS[group] if t in analysed]
        if tasks:
            out.append(GridFigure(f"paper_{group}", "nuclear_norm", [(t, [f"{t}/{s}" for s in STYLES[group]])
                                                                     for t in tasks], list(STYLES[group]),
                                  f"{group}: mean nuclear norm per layer and module (correct responses)"))
    return out


def reasoning_conditions(study: Study) -> list[str]:
    """The conditions the random-weights control (``--reinit-control``) runs again: the reasoning tasks, what
    H1-H5 read."""
    return [c.name for c in study.conditions if c.attributes.get("family") == "reasoning"]


HOOKS = StudyHooks(figures=figures, control=reasoning_conditions, data_flag="--paper-data DIR",
                   words=lambda config: [f"--groups {','.join(config.groups)}"])


def paper_study(groups=("cot", "math", "wiki"), tasks=None, **unused) -> Study:
    """The first paper's study on the groups (and tasks) asked."""
    conditions = tuple(Condition(name, source, attributes_of(source))
                       for cells in grid(groups, tasks).values() for name, source in cells.items())
    return Study("paper", conditions, CLAIMS, LABELS, hooks=HOOKS)


register_study("paper", paper_study, claims=CLAIMS, labels=LABELS)
