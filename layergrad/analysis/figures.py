"""Figures of an analysis (matplotlib, headless): the paper's panels and our overlays.

Every function draws one figure from the analysis tables and returns it (a notebook shows it);
``save`` writes it as PNG (palette-compressed, for the report) and SVG/PDF. Colours: modules keep
the paper's (q red, k green, v blue, o gray) plus three for the MLP; conditions take a fixed
qualitative palette in run order.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from layergrad.analysis.curves import table_rule
from layergrad.analysis.separability import select
from layergrad.engine import statistics

MODULE_COLOURS = {"q_proj": "#d62728", "k_proj": "#2ca02c", "v_proj": "#1f77b4", "o_proj": "#7f7f7f",
                  "gate_proj": "#9467bd", "up_proj": "#ff7f0e", "down_proj": "#8c564b"}
PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
           "#1f78b4", "#b2df8a"]
OTHER_LABELS = {"cosine_next": "cosine(G_l, G_l+1)", "cosine_pair": "cosine(G_q, G_o) / (G_k, G_v)"}  # the statistics' own labels are in their registry


PNG_DPI = 80


def label(metric: str) -> str:
    return OTHER_LABELS.get(metric) or statistics.label(metric)


def group_colours(groups: list[str], partner_of: dict | None = None) -> dict[str, str]:
    """A palette colour per condition; a condition with irrelevant responses shares its correct partner's
    colour (``partner_of``: irrelevant group -> correct group; it is drawn dashed)."""
    partner_of = {g: c for g, c in (partner_of or {}).items() if c in groups}
    bases = list(dict.fromkeys(partner_of.get(g, g) for g in groups))
    colour = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(bases)}
    return {g: colour[partner_of.get(g, g)] for g in groups}


def subplots(rows: int, cols: int, *, figsize, squeeze: bool = True, **kwargs):
    """A Figure and its axes without pyplot: drawing never touches (or switches) the caller's backend."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=squeeze, **kwargs)


def grid(n: int, width: float = 3.6, height: float = 2.8, cols: int | None = None):
    cols = cols or min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = subplots(rows, cols, figsize=(width * cols, height * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def legend_band(entries: int, ncol: int) -> float:
    """Height in inches of a figure legend of ``entries`` in ``ncol`` columns under the panels."""
    return 0.15 + 0.22 * math.ceil(max(entries, 1) / max(ncol, 1))


def legend_columns(fig: Figure, entries: int, inches_per_entry: float = 1.1) -> int:
    """As many legend columns as fit the figure's width (a module name and its line take about an inch)."""
    return max(1, min(entries, int(fig.get_size_inches()[0] / inches_per_entry)))


def fixed_layout(fig: Figure, *, left=0.85, right=0.2, top=0.7, bottom=0.55, legend=0.0, wspace=0.8,
                 hspace=0.75, colorbar=0.0) -> None:
    """Subplot margins and gaps in inches (``legend``: a band under the panels for the figure
    legend; ``colorbar``: room on the right). Fixed room for tick labels, axis labels and titles
    instead of ``tight_layout``, which measures every tick label and took half of a figure's time."""
    width, height = fig.get_size_inches()
    gridspec = fig.axes[0].get_subplotspec().get_gridspec()
    rows, cols = gridspec.get_geometry()
    span_w = width - left - right - colorbar
    span_h = height - top - bottom - legend
    panel_w = (span_w - (cols - 1) * wspace) / cols
    panel_h = (span_h - (rows - 1) * hspace) / rows
    fig.subplots_adjust(left=left / width, right=1 - (right + colorbar) / width, bottom=(bottom + legend) / height,
                        top=1 - top / height, wspace=wspace / panel_w, hspace=hspace / panel_h)


def panels(curves: pd.DataFrame, metric: str, groups: list[str]) -> Figure:
    """The paper's figure: one panel per condition, one line per module, layer on x."""
    data = curves[curves.metric == metric]
    fig, axes = grid(len(groups))
    top = data["ci_high"].max() if len(data) else 1
    bottom = data["ci_low"].min() if len(data) else 0
    for ax, group in zip(axes, groups):
        for module, rows in data[data.group == group].groupby("module", sort=False):
            ax.plot(rows.layer, rows["mean"], color=MODULE_COLOURS.get(module), label=module, lw=1.4)
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("layer")
        ax.set_ylabel(label(metric))
        ax.set_ylim(min(0, bottom * 1.05), top * 1.05)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    ncol = legend_columns(fig, len(names))
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"Mean {label(metric)} per layer (one panel per condition)", fontsize=11)
    fixed_layout(fig, legend=legend_band(len(names), ncol))
    return fig


def draw_all(figure, keys: list[tuple[str, str]], out: Path, formats) -> dict:
    """{(name, metric): paths} of every figure ``figure(name, metric)`` draws, saved as ``out/<name>_<metric>.<fmt>``
    (on every core: parallel.py)."""
    from layergrad.analysis.parallel import forked_map

    files = {key: f"{key[0]}_{key[1]}" if key[1] and key[0] != "headline" else key[0] for key in keys}
    return dict(zip(keys, forked_map(lambda key: save(figure(*key), out, files[key], formats), keys)))


def save(fig: Figure, out: Path, name: str, formats) -> list[Path]:
    """Write ``fig`` as ``out/name.<fmt>`` for each format (PNGs palette-compressed)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        if fmt == "png":
            save_png(fig, path)
        else:
            fig.savefig(path)
        paths.append(path)
    return paths


def save_png(fig: Figure, path: Path) -> None:
    """PNG with an adaptive 256-colour palette: line art loses nothing visible, the file ~3x less."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    image.save(path, optimize=True)


def overlays(curves: pd.DataFrame, metric: str, groups: list[str], partner_of: dict | None = None, *,
             title: str) -> Figure:
    """One panel per module, one line per condition with its 95% CI band (irrelevant responses dashed)."""
    data = curves[(curves.metric == metric) & curves.group.isin(groups)]
    modules = list(dict.fromkeys(data.module))
    partner_of = partner_of or {}
    colours = group_colours(groups, partner_of)
    fig, axes = grid(len(modules))
    for ax, module in zip(axes, modules):
        for group in groups:
            rows = data[(data.module == module) & (data.group == group)]
            if rows.empty:
                continue
            dashed = group in partner_of
            ax.plot(rows.layer, rows["mean"], color=colours[group], ls="--" if dashed else "-", lw=1.4, label=group)
            ax.fill_between(rows.layer, rows.ci_low, rows.ci_high, color=colours[group], alpha=0.18, lw=0)
        ax.set_title(module, fontsize=10)
        ax.set_xlabel("layer")
        ax.set_ylabel(label(metric))
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fixed_layout(fig, legend=legend_band(len(names), 6))
    return fig


def mad_bars(mad: pd.DataFrame, metric: str, groups: list[str]) -> Figure:
    """MAD per segment (x) and condition (bars) with 95% CIs, one panel per module."""
    rule = table_rule(mad[mad.metric == metric])
    data = mad[(mad.metric == metric) & (mad.rule == rule)]
    modules = list(dict.fromkeys(data.module))
    colours = group_colours(groups)
    segments = ["early", "middle", "late", "all"]
    width = 0.8 / max(len(groups), 1)
    fig, axes = grid(len(modules))
    for ax, module in zip(axes, modules):
        for i, group in enumerate(groups):
            rows = data[(data.module == module) & (data.group == group)].set_index("segment").reindex(segments)
            x = np.arange(len(segments)) + (i - (len(groups) - 1) / 2) * width
            err = np.vstack([rows["mad"] - rows.ci_low, rows.ci_high - rows["mad"]]).clip(min=0)
            ax.bar(x, rows["mad"], width, color=colours[group], label=group, yerr=err, capsize=2,
                   error_kw={"lw": 0.8})
        ax.set_xticks(range(len(segments)), segments)
        ax.set_title(module, fontsize=10)
        ax.set_ylabel(f"MAD of {label(metric)}")
        ax.grid(alpha=0.3, axis="y")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    fig.suptitle(f"Mean absolute difference across layers ({rule} segments), 95% bootstrap CI", fontsize=11)
    fixed_layout(fig, legend=legend_band(len(names), 6))
    return fig


def heatmap(curves: pd.DataFrame, metric: str, groups: list[str]) -> Figure:
    """Layer x module map of log10 mean metric, one panel per condition, one colour scale."""
    data = curves[curves.metric == metric]
    log = bool((data["mean"] > 0).all())
    scale = (lambda v: np.log10(np.clip(v, 1e-30, None))) if log else (lambda v: v)
    values = scale(data["mean"].to_numpy())
    vmin, vmax = float(values.min()), float(values.max())
    fig, axes = grid(len(groups), width=3.4, height=3.0)
    image = None
    for ax, group in zip(axes, groups):
        table = data[data.group == group].pivot_table(index="module", columns="layer", values="mean", sort=False)
        image = ax.imshow(scale(table.to_numpy()), aspect="auto", vmin=vmin, vmax=vmax,
                          cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(table.index)), table.index, fontsize=8)
        ax.set_xlabel("layer")
        ax.set_title(group, fontsize=10)
    fixed_layout(fig, bottom=0.5, colorbar=1.0)
    if image is not None:
        width, height = fig.get_size_inches()
        cax = fig.add_axes((1 - 0.95 / width, 0.5 / height, 0.15 / width, 1 - 1.2 / height))
        fig.colorbar(image, cax=cax, label=f"log10 {label(metric)}" if log else label(metric))
    fig.suptitle(f"{label(metric)} per layer and module", fontsize=11)
    return fig


def pair_overlays(curves: pd.DataFrame, metric: str, pairs: list[tuple[str, str]], *, title: str) -> Figure:
    """Rows = pairs (e.g. correct vs irrelevant per style), columns = modules; each panel keeps
    its own scale, so short- and long-response conditions are both readable."""
    data = curves[curves.metric == metric]
    modules = list(dict.fromkeys(data.module))
    fig, axes = subplots(len(pairs), len(modules), figsize=(2.5 * len(modules), 2.1 * len(pairs) + 0.8),
                             squeeze=False)
    for row, (a, b) in enumerate(pairs):
        for col, module in enumerate(modules):
            ax = axes[row][col]
            for group, colour, style in ((a, "#1b9e77", "-"), (b, "#d95f02", "--")):
                rows = data[(data.module == module) & (data.group == group)]
                ax.plot(rows.layer, rows["mean"], color=colour, ls=style, lw=1.3, label="first" if group == a else "second")
                ax.fill_between(rows.layer, rows.ci_low, rows.ci_high, color=colour, alpha=0.2, lw=0)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(module, fontsize=9)
            if row == len(pairs) - 1:
                ax.set_xlabel("layer", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{a}\nvs {b}", fontsize=8)
    handles = [Line2D([], [], color="#1b9e77", ls="-"), Line2D([], [], color="#d95f02", ls="--")]
    fig.legend(handles, ["first condition of the row (e.g. correct)", "second (e.g. irrelevant)"],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fixed_layout(fig, top=0.6, bottom=0.45, legend=legend_band(2, 2), wspace=0.55, hspace=0.3)
    return fig


def differences(table: pd.DataFrame, metric: str, pairs: list[tuple[str, str]]) -> Figure:
    """One panel per pair: the second condition's mean over the first's, minus 1, per layer, a line per module with
    its 95% CI band (curves.csv's rows with ``vs``); 0 = no difference."""
    data = table[table.metric == metric]
    shown = [(a, b) for a, b in pairs if ((data.vs == a) & (data.group == b)).any()]
    fig, axes = grid(max(len(shown), 1), width=3.4, height=2.6)
    for ax, (a, b) in zip(axes, shown):
        for module, rows in data[(data.vs == a) & (data.group == b)].groupby("module", sort=False):
            colour = MODULE_COLOURS.get(module)
            ax.plot(rows.layer, 100 * rows["mean"], color=colour, lw=1.2, label=module)
            ax.fill_between(rows.layer, 100 * rows.ci_low, 100 * rows.ci_high, color=colour, alpha=0.12, lw=0)
        ax.axhline(0, color="#444", lw=0.8, ls=":")
        ax.set_title(f"{b} vs {a}", fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
        ax.set_ylabel("change of the mean (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    ncol = legend_columns(fig, len(names))
    if names:
        fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"{label(metric)}: per-layer change between conditions (95% bootstrap CI)", fontsize=11)
    fixed_layout(fig, legend=legend_band(len(names), ncol))
    return fig


def length_scatter(data, groups: list[str], partner_of: dict | None = None) -> Figure:
    """Every computed sample's nuclear norm (mean over its layers and modules) against its response length, both on
    log scales, a colour per condition (irrelevant responses hollow): where two conditions' clouds share no
    lengths, nothing in the data can tell the condition from the length."""
    ok = data.samples[data.samples.status == "ok"].set_index(["group", "sample_id"])
    per_sample = data.stats.groupby(["group", "sample_id"]).nuclear_norm.mean()
    joined = pd.DataFrame({"nn": per_sample, "tokens": ok.n_response_tokens.reindex(per_sample.index)}).dropna()
    partner_of = partner_of or {}
    colours = group_colours(groups, partner_of)
    fig, axes = subplots(1, 1, figsize=(7.5, 4.6), squeeze=False)
    ax = axes[0][0]
    for group in groups:
        if group not in joined.index.get_level_values(0):
            continue
        rows = joined.loc[group]
        hollow = group in partner_of
        ax.scatter(np.maximum(rows.tokens, 1), rows.nn, s=14, label=group, edgecolors=colours[group],
                   facecolors="none" if hollow else colours[group], linewidths=0.8, alpha=0.8)
    if (joined.nn > 0).all() and len(joined):
        ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set(xlabel="response tokens", ylabel="nuclear norm ‖G‖* (mean over layers and modules)",
           title="The gradient against response length, per sample")
    ax.grid(alpha=0.3, which="both")
    if ax.collections:
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fixed_layout(fig, right=2.2, top=0.45)
    return fig


SCORE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
HEADLINE_SCORES = {("loss", ""): "loss", ("length", ""): "length", ("per_loss", "nuclear_norm"): "NN / loss",
                   ("mean", "nuclear_norm"): "mean NN", ("profile", "nuclear_norm"): "NN profile (CV)"}


def headline(mean_curves: pd.DataFrame, groups: list[str], separability: pd.DataFrame,
             pairs: list[tuple[str, str]], partner_of: dict | None = None) -> Figure:
    """The answer in one figure: the nuclear-norm curve of every condition (mean over modules,
    log scale, 95% CI) and, when there are correct/irrelevant pairs, how well the loss, the
    length and the gradient tell them apart (AUROC, 95% CI)."""
    show_auroc = bool(pairs) and not separability.empty
    fig, axes = subplots(1, 2 if show_auroc else 1, figsize=(13 if show_auroc else 7, 4.2), squeeze=False)
    ax = axes[0][0]
    partner_of = partner_of or {}
    colours = group_colours(groups, partner_of)
    for group in groups:
        rows = mean_curves[mean_curves.group == group]
        if rows.empty:
            continue
        ax.plot(rows.layer, rows["mean"], color=colours[group], ls="--" if group in partner_of else "-", lw=1.6,
                label=group)
        ax.fill_between(rows.layer, rows.ci_low, rows.ci_high, color=colours[group], alpha=0.18, lw=0)
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel="nuclear norm ‖G‖* (mean over modules)",
           title="Gradient nuclear norm per layer (95% CI)")
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no computed samples", transform=ax.transAxes, ha="center", va="center")
    if show_auroc:
        auroc_bars(axes[0][1], separability, pairs, partner_of)
    fixed_layout(fig, top=0.4, bottom=0.75 if show_auroc else 0.55, wspace=1.0)
    return fig


def auroc_bars(ax, separability: pd.DataFrame, pairs: list[tuple[str, str]], partner_of: dict | None = None) -> None:
    """Grouped bars: per pair, the AUROC of each baseline and gradient score with its CI."""
    width = 0.8 / len(HEADLINE_SCORES)
    for k, ((measure, metric), short) in enumerate(HEADLINE_SCORES.items()):
        values, errors = [], []
        for a, b in pairs:
            v = select(separability, a, b, measure, metric)
            values.append(v.auroc if v is not None else np.nan)
            errors.append((v.auroc - v.ci_low, v.ci_high - v.auroc) if v is not None else (0, 0))
        x = np.arange(len(pairs)) + (k - (len(HEADLINE_SCORES) - 1) / 2) * width
        ax.bar(x, values, width, yerr=np.clip(np.array(errors).T, 0, None), capsize=2, label=short,
               color=SCORE_COLOURS[k], error_kw={"lw": 0.8})
    ax.axhline(0.5, color="#444", lw=0.8, ls=":")
    ax.set_xticks(range(len(pairs)), [f"{a}\nvs irrelevant" if (partner_of or {}).get(b) == a else f"{a}\nvs {b}"
                                      for a, b in pairs], fontsize=8)
    ax.set(ylim=(0, 1.18), yticks=np.arange(0, 1.01, 0.2), ylabel="AUROC (single scores oriented, ≥ 0.5)",
           title="Correct vs irrelevant: loss and length against the gradient")
    ax.legend(fontsize=7, ncol=len(HEADLINE_SCORES), frameon=False, loc="upper center")
    ax.grid(alpha=0.3, axis="y")


def grid_panels(curves: pd.DataFrame, metric: str, rows: list[tuple[str, list[str]]], columns: list[str], *,
                title: str) -> Figure:
    """The paper's layout: a row per task, a panel per condition (column), a line per module;
    panels of a row share their y scale. Missing conditions leave an empty panel."""
    data = curves[curves.metric == metric]
    fig, axes = subplots(len(rows), len(columns), figsize=(2.9 * len(columns), 2.2 * len(rows) + 0.8),
                             squeeze=False, sharex=True)
    for r, (task, groups) in enumerate(rows):
        top = data[data.group.isin(groups)]["mean"].max()
        for c, group in enumerate(groups):
            ax = axes[r][c]
            for module, part in data[data.group == group].groupby("module", sort=False):
                ax.plot(part.layer, part["mean"], color=MODULE_COLOURS.get(module), lw=1.2, label=module)
            ax.set_ylim(0, top * 1.05 if np.isfinite(top) and top > 0 else 1)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(task, fontsize=9)
    handles, names = [], []
    for ax in axes.flat:
        handles, names = ax.get_legend_handles_labels()
        if handles:
            break
    ncol = legend_columns(fig, len(names))
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fixed_layout(fig, top=0.8, bottom=0.35, legend=legend_band(len(names), ncol), wspace=0.55,
                 hspace=0.15)
    return fig


def correlations(table: pd.DataFrame) -> Figure:
    """Spearman ρ (circles) and ρ given log length (triangles) with 95% CIs: a panel per record field,
    a row per score, pooled over the first run's conditions (else the first scope)."""
    pooled = table.scope[table.scope.str.contains("+", regex=False)]
    data = table[table.scope == (pooled.iloc[0] if len(pooled) else table.scope.iloc[0])]  # one run's pool
    fields = list(dict.fromkeys(data.field))
    scores = list(dict.fromkeys(data.score))
    fig, axes = grid(len(fields), width=3.6, height=0.35 * len(scores) + 1.2, cols=min(len(fields), 3))
    for ax, name in zip(axes, fields):
        part = data[data.field == name].set_index("score").reindex(scores)
        y = np.arange(len(scores))
        for column, lo, hi, marker, shift, colour in (("spearman", "ci_low", "ci_high", "o", -0.15, "#1b9e77"),
                                                      ("partial_spearman", "partial_ci_low", "partial_ci_high", "^",
                                                       0.15, "#d95f02")):
            err = np.vstack([part[column] - part[lo], part[hi] - part[column]]).clip(min=0)
            ax.errorbar(part[column], y + shift, xerr=err, fmt=marker, ms=4, color=colour, lw=1, capsize=2)
        ax.axvline(0, color="#444", lw=0.8, ls=":")
        ax.set(xlim=(-1, 1), title=name, xlabel="Spearman ρ")
        ax.set_yticks(y, scores if ax is axes[0] else [""] * len(scores), fontsize=8)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], color="#1b9e77", marker="o", ls=""), Line2D([], [], color="#d95f02", marker="^", ls="")]
    fig.legend(handles, ["ρ", "ρ given log response length"], loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"Records' own scores against the gradient, loss, length ({data.scope.iloc[0]}), 95% CI", fontsize=11)
    fixed_layout(fig, left=2.4, legend=legend_band(2, 2), wspace=0.4)
    return fig


def experts(table: pd.DataFrame, groups: list[str]) -> Figure:
    """Per condition (rows), layer x expert maps of the share of routed tokens (the router's choice) and of the
    gradient load (the expert's share of the layer's nuclear norm; analysis/experts.py), of the experts'
    down projection; one colour scale."""
    module = "expert.down_proj" if (table.module == "expert.down_proj").any() else table.module.iloc[0]
    data = table[table.module == module]
    groups = [g for g in groups if g in set(data.group)]
    top = float(data[["token_share", "load"]].max().max()) or 1.0
    fig, axes = subplots(len(groups), 2, figsize=(7.4, 2.6 * len(groups) + 0.9), squeeze=False)
    image = None
    for row, group in zip(axes, groups):
        mine = data[data.group == group]
        for ax, column, title in zip(row, ("token_share", "load"), ("tokens routed", "gradient load (‖G_e‖* share)")):
            grid_ = mine.pivot_table(index="layer", columns="expert", values=column, sort=True)
            image = ax.imshow(grid_.to_numpy(), aspect="auto", vmin=0, vmax=top, cmap="magma",
                              interpolation="nearest", origin="lower")
            sparse_ticks(ax.set_yticks, grid_.index)
            sparse_ticks(ax.set_xticks, grid_.columns)
            ax.set_xlabel("expert")
            ax.set_ylabel("layer")
            ax.set_title(f"{group}: {title}", fontsize=9)
    fixed_layout(fig, bottom=0.5, colorbar=1.0)
    if image is not None:
        width, height = fig.get_size_inches()
        cax = fig.add_axes((1 - 0.95 / width, 0.5 / height, 0.15 / width, 1 - 1.2 / height))
        fig.colorbar(image, cax=cax, label="mean share per sample")
    fig.suptitle(f"MoE experts ({module}): which experts each condition's tokens reach and its gradient loads",
                 fontsize=10)
    return fig


def sparse_ticks(set_ticks, labels, most: int = 16) -> None:
    """At most ``most`` tick labels of a map's rows or columns, evenly spaced (128 experts stay readable)."""
    step = max(1, math.ceil(len(labels) / most))
    positions = list(range(0, len(labels), step))
    set_ticks(positions, [labels[i] for i in positions], fontsize=7)
