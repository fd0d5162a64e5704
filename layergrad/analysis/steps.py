"""Probes over training steps (``LayerGradCallback`` runs): the early / middle / late nuclear norm
and the MAD of every condition as a function of the step, as a table and one figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from layergrad.analysis.summary import summary_table
from layergrad.errors import InputError
from layergrad.runs.store import load_run

COLUMNS = ["step", "condition", "nn_early", "nn_middle", "nn_late", "mad", "n"]


def over_steps(paths: list[str | Path]) -> pd.DataFrame:
    """One row per (probe step, condition): means over modules of each layer third, MAD, n."""
    rows = []
    for path in paths:
        stats, samples, manifest = load_run(path)
        if "step" not in manifest:
            raise InputError(f"{path} is not a probe of a training run (its run.json names no step); "
                             "--over-steps reads the step-* folders of LayerGradCallback")
        ok = stats[stats.sample_id.isin(samples.sample_id[samples.status == "ok"])]
        for condition, early, middle, late, mad_all, n in summary_table(ok):
            rows.append({"step": int(manifest["step"]), "condition": condition, "nn_early": early,
                         "nn_middle": middle, "nn_late": late, "mad": mad_all, "n": n})
    if not rows:
        raise InputError("no probe steps to show")
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["condition", "step"], kind="stable").reset_index(drop=True)


def irrelevant_conditions(paths: list[str | Path]) -> set[str]:
    """The probe conditions with irrelevant responses (by their attributes; drawn dashed)."""
    from layergrad.analysis.loading import condition_attributes

    return {c for path in paths for c, attrs in condition_attributes(load_run(path)[2]).items()
            if attrs.get("variant") == "irrelevant"}


def steps_figure(table: pd.DataFrame, dashed=()):
    """Four panels (early, middle, late nuclear norm; MAD) against the step, a line per condition
    (``dashed``: the conditions with irrelevant responses)."""
    from layergrad.analysis.figures import fixed_layout, group_colours, subplots

    conditions = list(dict.fromkeys(table.condition))
    colours = group_colours(conditions)
    fig, axes = subplots(1, 4, figsize=(15, 3.6))
    panels = [("nn_early", "early layers"), ("nn_middle", "middle layers"), ("nn_late", "late layers"),
              ("mad", "MAD over all layers")]
    for ax, (column, title) in zip(axes, panels):
        for condition in conditions:
            part = table[table.condition == condition]
            ax.plot(part.step, part[column], marker="o", ms=3, lw=1.5, color=colours[condition],
                    ls="--" if condition in dashed else "-", label=condition)
        ax.set(title=title, xlabel="training step", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("nuclear norm (mean over modules)")
    axes[3].set_ylabel("MAD of the mean curve")
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle("Per-sample weight-gradient nuclear norm of the probe set during fine-tuning", fontsize=11)
    fixed_layout(fig, top=0.6, wspace=0.9)
    return fig


def write_over_steps(paths: list[str | Path], out: str | Path, formats=("png", "svg"), log=print) -> Path:
    """steps.csv and figures/over_steps.* in ``out``."""
    from layergrad.analysis.figures import save

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    table = over_steps(paths)
    table.to_csv(out / "steps.csv", index=False)
    save(steps_figure(table, irrelevant_conditions(paths)), out / "figures", "over_steps", formats)
    log(f"wrote {out}/steps.csv and figures/over_steps ({table.step.nunique()} steps, {table.condition.nunique()} "
        "conditions)")
    return out
