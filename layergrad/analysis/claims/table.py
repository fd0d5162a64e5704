"""A study's claims checked on the conditions a run has: one row per (claim, cell, module).

The conditions are found by their attributes (context.Cell), the statistics by the claim's kind
(kinds.py), then Holm over every module row of the table, each row's verdict, its caveats (caveats.py)
and one 'all modules' row per (claim, cell) (testing.py). A claim whose conditions the run lacks gets one
'not-applicable' row saying which, and why when a condition of the study had no computable sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from layergrad.analysis.claims.caveats import Controls
from layergrad.analysis.claims.context import ALL, Cell, Context, Where, cells_of, label, module_means
from layergrad.analysis.claims.kinds import sides
from layergrad.analysis.claims.kinds.shared import module_rows
from layergrad.analysis.claims.stability import with_stability
from layergrad.analysis.claims.testing import COLUMNS, ROW_COLUMNS, judge, module_summaries
from layergrad.studies.registry import CAVEATS, CLAIM_KINDS


def claims_table(claims, attributes: dict, metrics: dict, prompts: dict, lengths: dict, n_boot: int, seed: int, *,
                 labels: dict | None = None, separability: pd.DataFrame | None = None,
                 increment: pd.DataFrame | None = None, control: pd.DataFrame | None = None,
                 scores: dict | None = None, unavailable: dict | None = None, whole: str = "",
                 draws: int = 0) -> pd.DataFrame:
    """Every claim (studies.ClaimSpec, in order) on every cell it applies to, Holm-corrected, plus one 'all
    modules' row per (claim, cell); with ``draws``, each row's stability over that many random halves of the
    prompts (stability.py).

    ``attributes``: {group: its attributes}, in run order; ``metrics``: {metric: {(group, module): samples x
    layers}}; ``prompts``, ``lengths``: {group: Series by sample_id}; ``labels``: words for attribute values
    (the study's); ``control``: the claims table of the same data under random weights, quoted in the
    caveats that ask for it; ``scores``: the per-sample baselines by group (caveats.baseline_scores);
    ``unavailable``: {condition: (attributes, why)} of the study's conditions without any computable sample;
    ``whole``: the name of the one cell of claims without ``per`` (the study's). The confounds a claim may name:
    response length (``lengths``) and the loss (``scores['loss']``).
    """
    claims = [c for c in claims if not c.between_runs]
    ctx = context(metrics, prompts, lengths, (scores or {}).get("loss"), n_boot, seed, attributes)
    by_per = {per: cells_of(attributes, per, ctx, whole) for per in dict.fromkeys(c.per for c in claims)}
    order = list(dict.fromkeys((per, key) for group, attrs in attributes.items() for per in by_per
                               for key in [str(attrs.get(per, "")) if per else whole]))
    specs = {c.id: c for c in claims}

    def table_of(ctx: Context, caveat=lambda r: "") -> pd.DataFrame:
        rows = []
        for per, key in order:
            cell, reference = by_per[per][key], list(by_per[per].values())
            for spec in (c for c in claims if c.per == per and cell.applies(c.where)):
                rows += claim_rows(spec, ctx, cell, reference, labels or {}, unavailable or {})
        return judged(pd.DataFrame(rows, columns=ROW_COLUMNS), specs, caveat)

    controls = Controls(prompts, lengths, separability, increment, control, scores or {})
    table = table_of(ctx, lambda r: caveat_of(specs[r.claim], r, controls, by_per[specs[r.claim].per].get(r.task)))
    return with_stability(table, table_of, ctx, draws, seed) if draws else table


def context(metrics: dict, prompts: dict, lengths: dict, losses: dict | None, n_boot: int, seed: int,
            attributes: dict | None = None) -> Context:
    """What the kinds read: the matrices with each group's mean over its modules added (the 'all modules' rows),
    the prompts, the confounds' per-sample values and the groups' attributes."""
    covariates = {"length": dict(lengths), **({"loss": dict(losses)} if losses else {})}
    return Context({m: module_means(v) for m, v in metrics.items()}, dict(prompts), n_boot,
                   np.random.default_rng(seed), covariates=covariates, attributes=dict(attributes or {}))


def caveat_of(spec, row, controls: Controls, cell: Cell | None) -> str:
    """The words of the caveat the claim names, for one row."""
    return CAVEATS.get(spec.caveat).write(spec, row, controls, cell)


def claim_rows(spec, ctx: Context, cell: Cell, reference: list[Cell], labels: dict, unavailable: dict) -> list[dict]:
    """One row per module (or per label of the kind) of a cell, or one not-applicable row naming what is missing."""
    kind = CLAIM_KINDS.get(spec.kind)
    missing = [s for s in kind.needs(spec) if not cell.find(s)]
    if hasattr(spec.options, "reference") and not any(reference_has(spec, c) for c in reference):
        missing.append(spec.options.reference_needs)
    if missing:
        return [not_applicable(spec, cell.key, why_missing(missing, labels, unavailable, spec, cell))]
    if spec.compare:
        a, b = (cell.one(s) for s in sides(spec))
    else:
        a = b = ""
    names = kind.rows(ctx, spec, cell) if kind.rows else None  # a kind's rows; None: the modules both sides have
    own_rows = names is not None
    if names is None:
        names = module_rows(ctx, spec.statistic, a, b)
    elif ALL not in names:
        names = names + [ALL]  # the summary row, where the kind can test the mean over the modules
    rows = []
    for name in names:
        stat = kind.statistic(ctx, spec, Where(cell, reference), name)
        if stat:
            rows.append({"claim": spec.id, "task": cell.key, "module": name, "statement": spec.statement,
                         "definition": definition(spec), "a": a, "b": b, **stat})
    if own_rows and all(r["module"] == ALL for r in rows):
        rows = []  # a summary alone: the kind found none of its own rows
    if not rows and own_rows:
        return [not_applicable(spec, cell.key, "the run holds no values it reads (e.g. computed without --cosine)")]
    if not rows and names:
        counts = " and ".join(f"{len(ctx.prompts.get(g, []))} in {g}" for g in dict.fromkeys((b, a)))
        return [not_applicable(spec, cell.key, f"too few computed samples to compare ({counts}; needs 2 a side)")]
    return rows


def reference_has(spec, cell: Cell) -> bool:
    ref = spec.options.reference
    (attribute, values), = ref["compare"].items()
    return all(cell.find({**ref.get("where", {}), attribute: v}) for v in values)


def why_missing(missing: list, labels: dict, unavailable: dict, spec, cell: Cell) -> str:
    """'needs None CoT and Detailed CoT, which the run does not have'; a condition of the study that had no
    computable sample is named with its reason."""
    main = spec.first_second()[0] if spec.compare else None
    words = [m if isinstance(m, str) else label(m, labels, main) for m in missing]
    dead = [(name, why) for m in missing if not isinstance(m, str) for name, (attrs, why) in unavailable.items()
            if all(str(attrs.get(k)) in ([str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)])
                   for k, v in m.items()) and (not spec.per or str(attrs.get(spec.per, "")) == cell.key)]
    if dead:
        return "; ".join(f"needs {name}, which has no computable sample ({why})" for name, why in dead)
    return f"needs {' and '.join(words)}, which the run does not have"


def definition(spec) -> str:
    """The claim's operational definition: its own words, else written from its parameters."""
    if spec.definition:
        return spec.definition
    kind = CLAIM_KINDS.get(spec.kind)
    attribute, first, second = spec.first_second() if spec.compare else ("", "", "")
    scope = f"the {spec.layers} layers" if isinstance(spec.layers, str) else "layers " + ", ".join(map(str, spec.layers))
    scope = "all layers" if spec.layers == "all" else scope
    direction = {"greater": "positive = holds", "less": "negative = holds", "two-sided": "either sign",
                 "equivalent": f"holds within ±{spec.margin or 0:g}"}[spec.direction]
    test = spec.test or ("two one-sided randomization tests" if spec.direction == "equivalent"
                         else "label permutation" if spec.paired == "no" and spec.kind == "difference" else kind.test)
    what = kind.describe
    what = what[0].upper() + what[1:]
    return (f"{what} ({spec.statistic.replace('_', ' ')}, {scope}), {first} vs {second} by {attribute} ({direction}); "
            f"{test}.")


def not_applicable(spec, task: str, why: str) -> dict:
    return {"claim": spec.id, "task": task, "module": ALL, "statement": spec.statement,
            "definition": definition(spec), "verdict": "not-applicable", "caveats": why}


def judged(table: pd.DataFrame, specs: dict, caveat) -> pd.DataFrame:
    """Holm, verdicts, caveats and the 'all modules' summaries of a table of module rows."""
    if table.empty:
        return table
    signs = table.claim.map(lambda c: specs[c].sign)
    margins = table.claim.map(lambda c: specs[c].margin if specs[c].direction == "equivalent" else np.nan)
    margins = table.margin.astype(float).where(table.margin.notna() & margins.notna(), margins)  # a row's own
    table = judge(table, signs, margins)
    table["caveats"] = [r.caveats if r.verdict == "not-applicable" else caveat(r) for r in table.itertuples()]
    return pd.concat([table, module_summaries(table)], ignore_index=True)[COLUMNS]


# ----------------------------------------------------------------------------- between two runs

def between_runs_table(claims, first: dict, second: dict, metrics: dict, prompts: dict, n_boot: int, seed: int, *,
                       labels: dict | None = None) -> pd.DataFrame:
    """The between-runs claims per cell and module, the first run's groups against the second's (e.g. a base and
    an instruct run); ``first``/``second``: {group: attributes} of each run."""
    ctx = context(metrics, prompts, {}, None, n_boot, seed)
    rows, specs = [], {}
    claims = [c for c in claims if c.between_runs]
    cells = {per: (cells_of(first, per, ctx), cells_of(second, per, ctx)) for per in dict.fromkeys(c.per for c in claims)}
    for key in dict.fromkeys(k for per, (mine, _) in cells.items() for k in mine):
        for spec in claims:
            mine, theirs = cells[spec.per]
            cell_a, cell_b = mine.get(key), theirs.get(key)
            if cell_a is None or not cell_a.applies(spec.where):
                continue
            specs[spec.id] = spec
            kind = CLAIM_KINDS.get(spec.kind)
            missing = [s for s in kind.needs(spec) if not cell_a.find(s) or cell_b is None or not cell_b.find(s)]
            if missing:
                main = spec.first_second()[0]
                rows.append(not_applicable(spec, key, f"needs {' and '.join(label(m, labels or {}, main) for m in missing)}"
                                                      " in both runs"))
                continue
            anchor, shown = kind.needs(spec)[0], kind.needs(spec)[-1]
            for module in module_rows(ctx, spec.statistic, cell_a.one(anchor), cell_a.one(anchor)):
                stat = kind.statistic(ctx, spec, Where(cell_a, other=cell_b), module)
                if stat:
                    rows.append({"claim": spec.id, "task": key, "module": module, "statement": spec.statement,
                                 "definition": definition(spec), "a": cell_a.one(shown), "b": cell_b.one(shown), **stat})
    return judged(pd.DataFrame(rows, columns=ROW_COLUMNS), specs,
                  lambda r: caveat_of(specs[r.claim], r, Controls(prompts, {}), None))
