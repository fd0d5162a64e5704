"""The built-in caveats: what the reader of a claim row must keep in mind, in words — how the two conditions'
lengths overlap, whether length, loss or IFD separate them as well as the gradient, what the gradient
profile adds beyond them, and the same contrast under random weights. A claim names its caveat; each is
registered with ``@caveat(name, options=...)`` (studies/registry.py) as ``(spec, row, controls, cell) -> str``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from layergrad.analysis.claims.kinds import partners, sides
from layergrad.analysis.separability import MEASURES, auroc, select
from layergrad.studies.registry import ClaimOptions, caveat


@dataclass(frozen=True)
class Controls:
    """What the caveats read: prompts and response lengths per group, the separability tables."""

    prompts: dict
    lengths: dict
    separability: pd.DataFrame | None = None
    increment: pd.DataFrame | None = None
    reinit: pd.DataFrame | None = None  # the claims table under random weights (--reinit)
    scores: dict = field(default_factory=dict)  # {baseline name: {group: Series by sample_id}} (loss, IFD)


def length_caveat(a: str, b: str, lengths: dict) -> str:
    """Response lengths of the two conditions: disjoint ranges make length a rival explanation."""
    if a not in lengths or b not in lengths:
        return ""
    la, lb = lengths[a].to_numpy(dtype=float), lengths[b].to_numpy(dtype=float)
    lo, hi = max(la.min(), lb.min()), min(la.max(), lb.max())
    if lo > hi:
        return (f"response lengths do not overlap ({a} {la.min():.0f}–{la.max():.0f} tokens, {b} {lb.min():.0f}–"
                f"{lb.max():.0f}): length alone could produce this difference")
    share = float(((np.r_[la, lb] >= lo) & (np.r_[la, lb] <= hi)).mean())
    return f"{share:.0%} of the samples lie in the length range both conditions share"


def baseline_scores(samples: pd.DataFrame) -> dict:
    """{name: {group: Series by sample_id}} of the cheap per-sample scores a run has: loss, and IFD."""
    columns = [("loss", "loss")] + ([("IFD", "ifd")] if "ifd" in samples.columns else [])
    return {name: {g: rows.set_index("sample_id")[col].astype(float) for g, rows in samples.groupby("group")}
            for name, col in columns}


def baseline_auroc_caveat(a: str, b: str, controls: Controls) -> str:
    """'AUROC length x, loss y, IFD z' of a against b, from the per-group values (any two groups of a run)."""
    parts = []
    for name, values in (("length", controls.lengths), *controls.scores.items()):
        if a in values and b in values:
            va, vb = values[a].to_numpy(dtype=float), values[b].to_numpy(dtype=float)
            va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
            if len(va) and len(vb):
                parts.append(f"{name} {auroc(np.r_[np.zeros(len(va)), np.ones(len(vb))], np.r_[va, vb]):.2f}")
    return f"AUROC {b} vs {a}: " + ", ".join(parts) if parts else ""


def range_caveat(group: str, lengths: dict) -> str:
    """A one-condition claim's length note: the range and median of its response lengths."""
    if group not in lengths or not len(lengths[group]):
        return ""
    values = lengths[group].to_numpy(dtype=float)
    return f"{group}: responses {values.min():.0f}–{values.max():.0f} tokens (median {np.median(values):.0f})"


def separability_caveat(row, controls: Controls, pairs: list[tuple[str, str, str]]) -> str:
    """Does the loss separate each (name, correct, irrelevant) pair as well as the gradient? Beyond-loss value."""
    separability, increment = controls.separability, controls.increment
    if separability is None or separability.empty:
        return ""
    notes = []
    for name, a, b in pairs:
        rows = separability[(separability.a == a) & (separability.b == b)]
        grad = rows[(rows.kind == "gradient") & (rows.metric == "nuclear_norm")]
        loss = select(separability, a, b, "loss")
        if loss is None or grad.empty:
            continue
        loss, best = loss.auroc, grad.auroc.max()
        note = f"{name}: AUROC loss {loss:.2f} {'≥' if loss >= best else '<'} gradient {best:.2f}"
        r = increment_for(increment, a, b, "nuclear_norm")
        if r is not None:
            note += f", profile adds {r.gain:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] beyond loss and length"
        notes.append(note)
    return "; ".join(notes)


def increment_for(increment: pd.DataFrame | None, a: str, b: str, metric: str):
    """The increment row of a pair (either order) for ``metric``'s profile, else the nuclear norm's; or None."""
    if increment is None or not len(increment):
        return None
    pair = increment[((increment.a == a) & (increment.b == b)) | ((increment.a == b) & (increment.b == a))]
    for wanted in (metric, "nuclear_norm"):
        if (pair.metric == wanted).any():
            return pair[pair.metric == wanted].iloc[0]
    return pair.iloc[0] if len(pair) else None


def controls_caveat(row, controls: Controls, reinit: bool, metric: str = "nuclear_norm") -> str:
    """Lengths, the baselines' AUROC against the gradient's, ``metric``'s profile increment, and (``reinit``)
    the same claim under random weights."""
    notes = [length_caveat(row.a, row.b, controls.lengths)]
    sep = controls.separability
    if sep is not None and len(sep):
        rows = sep[((sep.a == row.a) & (sep.b == row.b)) | ((sep.a == row.b) & (sep.b == row.a))]
        base = [f"{MEASURES[m].short} {rows[rows.measure == m].auroc.iloc[0]:.2f}" for m in ("length", "loss", "ifd")
                if (rows.measure == m).any()]
        grad = rows[(rows.kind == "gradient") & (rows.measure == "mean")]
        if base:
            text = "AUROC " + ", ".join(base)
            if len(grad):
                text += "; gradient " + ", ".join(f"{m.replace('_', ' ')} {a:.2f}" for m, a in zip(grad.metric, grad.auroc))
            notes.append(text)
    inc = increment_for(controls.increment, row.a, row.b, metric)
    if inc is not None:
        notes.append(str(inc.verdict))
    if reinit:
        notes.append(reinit_note(row, controls))
    return "; ".join(n for n in notes if n)


def reinit_note(row, controls: Controls) -> str:
    """The same claim row under random weights (the control run), or '' without one."""
    control = controls.reinit
    if control is None or not len(control):
        return ""
    same = control[(control.claim == row.claim) & (control.task == row.task) & (control.module == row.module)]
    if not len(same):
        return ""
    r = same.iloc[0]
    relative = "relative" in str(r.effect_kind)
    fmt = (lambda v: f"{v * 100:+.0f}%") if relative else (lambda v: f"{v:+.3f}")
    return (f"random weights: {r.verdict} ({fmt(r.effect)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}])"
            + (" — the pattern does not need what the model learned" if r.verdict == "holds" else ""))


def traces_caveat(row, controls: Controls) -> str:
    """The lengths of the two conditions and the baselines' AUROC of one against the other."""
    notes = [length_caveat(row.a, row.b, controls.lengths), baseline_auroc_caveat(row.a, row.b, controls)]
    return "; ".join(n for n in notes if n)


@dataclass(frozen=True, kw_only=True)
class ControlsOptions(ClaimOptions):
    reinit: bool = True  # quote the same claim under random weights


@dataclass(frozen=True, kw_only=True)
class SeparabilityOptions(ClaimOptions):
    caveat_names: list | None = None  # the words of the two sides (default: the compared values)


@caveat("controls", options=ControlsOptions)
def controls_note(spec, row, controls: Controls, cell) -> str:
    """Lengths, the baselines' AUROC against the gradient's, the profile's increment, random weights."""
    return controls_caveat(row, controls, spec.caveat_options.reinit, spec.statistic)


@caveat("length")
def length_note(spec, row, controls: Controls, cell) -> str:
    """How the two conditions' response lengths overlap (and the claim under random weights, when run)."""
    return "; ".join(n for n in (length_caveat(row.a, row.b, controls.lengths), reinit_note(row, controls)) if n)


@caveat("separability", options=SeparabilityOptions)
def separability_note(spec, row, controls: Controls, cell) -> str:
    """Does the loss separate each side's pair (``options.within``) as well as the gradient? (And the claim under
    random weights, when run.)"""
    notes = (separability_caveat(row, controls, separability_pairs(spec, cell)), reinit_note(row, controls))
    return "; ".join(n for n in notes if n)


@caveat("traces")
def traces_note(spec, row, controls: Controls, cell) -> str:
    """The lengths of the two conditions and the baselines' AUROC of one against the other."""
    return traces_caveat(row, controls)


@caveat("cosine")
def cosine_note(spec, row, controls: Controls, cell) -> str:
    """The range of the condition's response lengths."""
    return range_caveat(row.a, controls.lengths)


FAMILY = ("compares two runs: the claim is about models of one family (different sizes); across families it "
          "predicts disagreement")


@caveat("family")
def family_note(spec, row, controls: Controls, cell) -> str:
    """Between runs: the claim is about models of one family."""
    return FAMILY


@caveat("none")
def none_note(spec, row, controls: Controls, cell) -> str:
    return ""


def separability_pairs(spec, cell) -> list[tuple[str, str, str]]:
    """(name, condition, partner) of both sides of a claim with ``options.within`` (its separability caveat)."""
    if cell is None:
        return []
    names = spec.caveat_options.caveat_names or [s[spec.first_second()[0]] for s in sides(spec)][::-1]
    out = []
    for name, selector in zip(names, sides(spec)[::-1]):
        own, partner = partners(spec, selector)
        a, b = cell.one(own), cell.one(partner)
        if a and b:
            out.append((name, a, b))
    return out
