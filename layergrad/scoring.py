"""``layergrad score``: a dataset back with every record's gradient scores, and its top or bottom K
as a training file in the input's own format — streamed, resumable, on one process or many.

    layergrad score data.jsonl --model smollm2-135m-instruct --out scored/ --layers -1 --modules attn --top 0.1

The input is read in windows of records (JSONL line by line, Parquet by row groups, CSV in chunks, ``hf:``
streamed; a JSON list is read whole), each window computed and committed as one chunk of the run
underneath (``OUT/run``: ``kill -9`` loses at most the window in flight, a rerun computes only the rest;
refused if its configuration changes), so memory does not grow with the file. Under ``torchrun`` the
ranks take turns at the windows and rank 0 writes one scored file. The backward runs only down to the
lowest measured layer (``--layers``): the last layer's q/k/v/o cost about a forward pass.

Written: ``OUT/scored.jsonl`` and ``OUT/scored.parquet`` (every input record with all its fields, in input
order, plus the score columns; the Parquet file takes its columns from the first window) and, with
``--top``/``--bottom``, ``OUT/top-<K>-<by>.<ext>`` (the selected records unchanged, in input order, in the
input's format). Score columns (prefix ``lg_``, so no input field is overwritten): every registered
statistic (``lg_nuclear_norm``, ``lg_effective_rank``, ``lg_sigma1_ratio``, ...) as the mean over the
measured layers and modules, per module kind (``lg_nuclear_norm_q_proj``) and per depth segment with a
measured layer (``lg_effective_rank_late``), ``lg_loss``, ``lg_response_tokens``, with ``--ifd`` ``lg_ifd``
and ``lg_loss_direct``, with ``--residualize length`` ``lg_<by>_given_length``, and ``lg_status`` /
``lg_reason`` (a skipped record has no scores and is never selected). ``--by`` takes a score's name with or
without the prefix; ties are broken by input order.

``--residualize length``: the residual of the ``--by`` score after a least-squares fit on the log of the
response length over the scored records (score = a + b·log(tokens) + residual): what the score says beyond
length, which decides most quality subsets; the selection then ranks by the residual.

``--recipe oda`` reproduces OpenDataArena's NuclearNormScorer / EffectiveRankScorer (formatting in
data/formatting.py; the last layer's q/k/v/o unless ``--layers``/``--modules`` say otherwise): its scores
are ``lg_nuclear_norm_<kind>`` (from the text joined by ' ', as NuclearNormScorer builds it) and
``lg_effective_rank_<kind>`` (from a second pass, ``RANK_PASS``, joined by '\n' as EffectiveRankScorer
builds it), the effective rank with ODA's definition (singular values and shares under 1e-10 left out, the
shares renormalised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from layergrad.data.samples import content_id, sample_from_record
from layergrad.data.streaming import ParquetAppender, RecordSource, json_line, write_records
from layergrad.engine.layers import segment_bounds
from layergrad.engine.options import KINDS, kind_order
from layergrad.errors import InputError, did_you_mean
from layergrad.runs.config import RunConfig
from layergrad.runs.store import RunStore
from layergrad.schema import layer_rows

PREFIX = "lg_"
SEGMENTS = ("early", "middle", "late")
CONDITION = "data"
RANK_PASS = "data-effective-rank"  # the ODA recipe's second pass: the text of ODA's EffectiveRankScorer
WINDOW = 256  # records per committed chunk
RESIDUALIZE = ("length",)


def statistic_names() -> list[str]:
    from layergrad.engine import statistics

    return list(statistics.names())


def base_scores(ifd: bool) -> list[str]:
    """The scores before a per-kind or per-segment suffix: every statistic, the loss, the length (and IFD)."""
    return statistic_names() + ["loss", "response_tokens"] + (["ifd", "loss_direct"] if ifd else [])


def score_names(ifd: bool) -> list[str]:
    """Every score ``--by`` accepts (without the prefix)."""
    names = [f"{s}{suffix}" for s in statistic_names() for suffix in ["", *(f"_{k}" for k in KINDS),
                                                                       *(f"_{g}" for g in SEGMENTS)]]
    return names + base_scores(ifd)[len(statistic_names()):]


def score_column(by: str, ifd: bool) -> str:
    """The column ``--by`` names; an unknown name is a one-line InputError listing the scores."""
    name = by[len(PREFIX):] if by.startswith(PREFIX) else by
    names = score_names(ifd)
    if name in ("ifd", "loss_direct") and not ifd:
        raise InputError(f"--by {by} needs --ifd (the IFD is computed only when asked)")
    if name not in names:
        raise InputError(f"unknown score '{by}'.{did_you_mean(name, names)} Scores: {', '.join(base_scores(ifd))}, "
                         f"each also _<kind> and _early|middle|late")
    return PREFIX + name


@dataclass(frozen=True)
class Selection:
    """The top or bottom ``count`` records (a fraction when 0 < count < 1) by ``column``."""

    side: str  # 'top' | 'bottom'
    count: float
    column: str

    @classmethod
    def parse(cls, side: str, text, column: str) -> "Selection":
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = -1.0
        if not (0 < value < 1 or (value >= 1 and value == int(value))):
            raise InputError(f"--{side} takes a number of records (e.g. 10) or a fraction in (0, 1), got {text!r}")
        return cls(side, value, column)

    def size(self, available: int) -> int:
        return min(available, max(1, round(self.count * available)) if self.count < 1 else int(self.count))

    def file_name(self, suffix: str) -> str:
        return f"{self.side}-{self.count:g}-{self.column[len(PREFIX):]}{suffix}"


def score(data: str, out: str | Path, *, model="smollm2-135m-instruct", top=None, bottom=None,
          by: str = "effective_rank", residualize: str | None = None, window: int = WINDOW, log=print,
          **options) -> pd.DataFrame:
    """Score every record of a dataset, streamed; select its top or bottom records as a training file.

    Args:
        data: A JSONL, Parquet, CSV or JSON file (or a ``hf:``/``paper:`` source).
        out: The output folder (``scored.jsonl``, ``scored.parquet``, the selections, ``run/``).
        model: The model to score with: a ``LoadedModel`` (``layergrad.load_model``: loaded once, reused), or an
            alias, a folder, a .gguf file or a hub id.
        top: Also write the K records (or the fraction, e.g. 0.1) with the highest ``by`` score.
        bottom: Also write the K records (or fraction) with the lowest.
        by: The score to select by: any registered statistic (mean over the measured layers and modules),
            ``<statistic>_<kind>``, ``<statistic>_early|middle|late``, ``loss``, ``response_tokens``, ``ifd``.
        residualize: ``'length'``: rank by the residual of ``by`` after a least-squares fit on log response tokens.
        window: Records read, computed and committed together (a kill loses at most one window).
        log: Where progress lines go.
        **options: Any run, load or compute option: ``layers='-1'``, ``modules='attn'``, ``recipe='oda'``,
            ``ifd=True``, ``limit``, ``max_length``, ...

    Returns:
        The scored records (every input field plus the ``lg_*`` score columns) as a DataFrame.
    """
    from layergrad.models import LoadedModel

    out = Path(out)
    loaded = model if isinstance(model, LoadedModel) else None
    config = RunConfig.build(model=loaded.name if loaded else model, data={CONDITION: str(data)},
                             out=str(out / "run"), **options)
    column = score_column(by, config.compute.ifd)
    if residualize is not None and residualize not in RESIDUALIZE:
        raise InputError(f"--residualize takes {', '.join(RESIDUALIZE)}, got {residualize!r}")
    ranked = column + "_given_length" if residualize else column
    selections = [Selection.parse(side, value, ranked) for side, value in (("top", top), ("bottom", bottom))
                  if value is not None]
    source = RecordSource(str(data), config.paper_data)
    source.check()  # bad input: before the model loads
    compute_windows(config, source, window, log,
                    then=lambda: write_outputs(out, config, source, window, column, residualize, selections, log),
                    model=loaded)
    path = out / "scored.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


# ----------------------------------------------------------------------------- computing

def compute_windows(config: RunConfig, source: RecordSource, window: int, log, then=None, model=None) -> None:
    """Compute every record not yet in the run, a window at a time (runs/sources.Windows: one committed chunk
    each, the ranks of torchrun taking turns), by the one run lifecycle (runs/runner.run); ``then()`` runs on
    the main process once every rank is done; ``model``: an already loaded one."""
    from layergrad.runs.runner import run
    from layergrad.runs.sources import Windows

    oda = config.compute.recipe == "oda"
    windows = Windows(source, window, config.subsample(), lambda r, i: record_samples(r, i, source.fields, oda),
                      passes=2 if oda else 1)
    run(config, model=model, source=windows, log=log, keep_going=True, then=then)


def record_samples(record, index: int, fields, oda: bool = False) -> dict:
    """{condition: Sample} of one record: the record; with the ODA recipe once more as its EffectiveRankScorer
    builds the text (instruction + '\n' + output; its NuclearNormScorer joins them with ' '), a second pass
    from which the effective rank is taken."""
    sample = record_sample(record, index, fields, oda)
    return {CONDITION: sample, **({RANK_PASS: replace(sample, join="\n")} if oda else {})}


def record_sample(record, index: int, fields, oda: bool = False):
    """The Sample of one input record, its id tied to its position (a repeated record is scored again).
    The ODA recipe joins an Alpaca record as ODA does: instruction.strip() [+ "\n" + input.strip()], and
    output.strip()."""
    s = sample_from_record(record, index, fields)
    if oda and not fields and isinstance(record, dict) and {"instruction", "output"} <= set(record) and not s.problem:
        prompt = str(record["instruction"]).strip()
        if str(record.get("input") or "").strip():
            prompt += "\n" + str(record["input"]).strip()
        s = replace(s, prompt=prompt, response=str(record["output"]).strip())
    return replace(s, sample_id=f"{content_id(s.context, s.prompt, s.response)}@{index}")


def score_batch(m, records: list[tuple[int, dict]], options, fields=None) -> pd.DataFrame:
    """Records (index, record) scored in memory, no run directory: the same samples, engine and score columns
    as ``score`` (what a Ray Data stage computes per batch); one row per record, by its index."""
    from layergrad.engine.compute import run_all
    from layergrad.schema import samples_frame, stats_frame

    oda = options.recipe == "oda"
    conditions: dict = {}
    for index, record in records:
        for condition, sample in record_samples(record, index, fields, oda).items():
            conditions.setdefault(condition, []).append(sample)
    stats, rows = [], []

    def collect(batch) -> None:
        stats.extend(batch.stats)
        rows.extend(batch.samples)

    run_all(m, conditions, options, collect)
    table = chunk_scores(stats_frame(stats), samples_frame(rows), model_layers(m), oda)
    return table.reindex(index=[index for index, _ in records], columns=score_columns(m, options))


def model_layers(m) -> int:
    return int(m.identity.get("num_layers") or 0) or 1


def score_columns(m, options) -> list[str]:
    """Every score column ``chunk_scores`` writes for these options on this model, in its order (a batch whose
    records were all skipped has them too, empty)."""
    from layergrad.engine.projections import select_targets

    resolved = options.resolved()
    targets = select_targets(m.model, resolved.modules, resolved.layers)
    kinds = sorted({t.kind.replace("expert.", "experts.") if t.expert is not None else t.kind for t in targets},
                   key=kind_order)
    layers = {t.layer for t in targets}
    segments = [name for name, (lo, hi) in segment_bounds(model_layers(m)).items()
                if name in SEGMENTS and any(lo <= layer < hi for layer in layers)]
    suffixes = ["", *(f"_{kind}" for kind in kinds), *(f"_{segment}" for segment in segments)]
    names = [f"{name}{suffix}" for name in statistic_names() for suffix in suffixes]
    names += ["loss", "response_tokens"] + (["ifd", "loss_direct", "ifd_note"] if resolved.ifd else [])
    return [PREFIX + name for name in names + ["status", "reason", "sample_id"]]


TEXT_SCORES = {PREFIX + name for name in ("status", "reason", "sample_id", "ifd_note")}  # the rest are numbers


# ----------------------------------------------------------------------------- scores

def chunk_scores(stats: pd.DataFrame, samples: pd.DataFrame, n_layers: int, oda: bool = False) -> pd.DataFrame:
    """One chunk's samples -> their score columns, by source_index."""
    rank_pass = layer_rows(stats[stats.condition == RANK_PASS]) if oda else None
    stats = layer_rows(stats[stats.condition == CONDITION])  # a MoE layer's experts: their summary rows
    samples = samples[samples.condition == CONDITION].drop_duplicates("source_index").set_index("source_index")
    if oda and "spectrum" in stats.columns:
        stats = stats.assign(effective_rank=oda_ranks(stats, rank_pass))
    names = [n for n in statistic_names() if n in stats.columns]
    kinds = sorted(set(stats.module), key=kind_order)
    layers = set(stats.layer)
    subsets = {"": stats, **{f"_{kind}": stats[stats.module == kind] for kind in kinds}}
    for segment, (lo, hi) in segment_bounds(n_layers).items():
        if segment in SEGMENTS and any(lo <= layer < hi for layer in layers):
            subsets[f"_{segment}"] = stats[(stats.layer >= lo) & (stats.layer < hi)]
    means = {suffix: subset.groupby("sample_id")[names].mean() for suffix, subset in subsets.items()}
    parts = {f"{name}{suffix}": means[suffix][name] for name in names for suffix in subsets}
    table = pd.DataFrame(parts).add_prefix(PREFIX).reindex(samples.sample_id.to_numpy())
    table.index = samples.index
    table[PREFIX + "loss"] = samples.loss.where(samples.status == "ok")
    table[PREFIX + "response_tokens"] = samples.n_response_tokens.where(samples.status != "skipped")
    for name in ("ifd", "loss_direct", "ifd_note"):
        if name in samples.columns:
            table[PREFIX + name] = samples[name]
    table[PREFIX + "status"] = samples.status
    table[PREFIX + "reason"] = samples.reason
    table[PREFIX + "sample_id"] = samples.sample_id
    return table


def oda_ranks(stats: pd.DataFrame, rank_pass: pd.DataFrame) -> np.ndarray:
    """ODA's effective rank of every (sample, module, layer) row, from the second pass's spectra (the text ODA's
    EffectiveRankScorer builds); NaN where that pass has no row (its skip reason is in its samples)."""
    keys = ["sample_id", "module", "layer"]
    ranks = rank_pass.set_index(keys).spectrum.map(oda_effective_rank) if len(rank_pass) else pd.Series(dtype=float)
    return ranks.reindex(pd.MultiIndex.from_frame(stats[keys])).to_numpy(dtype=float)


def oda_effective_rank(sigma) -> float:
    """ODA-DataScorer's effective rank of one spectrum: σ ≤ 1e-10 and shares ≤ 1e-10 left out, renormalised."""
    s = np.asarray(sigma, dtype=float)
    s = s[s > 1e-10]
    if not len(s) or s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 1e-10]
    p = p / p.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


class ScoreIndex:
    """The scores of every committed chunk of a run (every rank's), read a chunk at a time by source_index."""

    def __init__(self, run: RunStore, n_layers: int, oda: bool):
        self.run, self.n_layers, self.oda = run, n_layers, oda
        self.ranges = []  # (lo, hi, chunk)
        for chunk in run.committed_chunks():
            index = run.read_chunk(chunk, "samples", ["source_index"]).source_index
            if len(index):
                self.ranges.append((int(index.min()), int(index.max()), chunk))
        self._cache: dict = {}

    def rows(self, lo: int, hi: int) -> pd.DataFrame:
        """Score rows of source indices lo..hi-1 (the most recent chunk wins a repeated index)."""
        parts = [self.chunk(chunk) for a, b, chunk in self.ranges if a < hi and b >= lo]
        if not parts:
            return pd.DataFrame()
        table = pd.concat(parts)
        table = table[(table.index >= lo) & (table.index < hi)]
        return table[~table.index.duplicated(keep="last")]

    def chunk(self, chunk: tuple) -> pd.DataFrame:
        key = (str(chunk[0]), chunk[1])
        if key not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = chunk_scores(self.run.read_chunk(chunk, "stats"), self.run.read_chunk(chunk, "samples"),
                                            self.n_layers, self.oda)
        return self._cache[key]


# ----------------------------------------------------------------------------- outputs

def write_outputs(out: Path, config: RunConfig, source: RecordSource, window: int, column: str,
                  residualize: str | None, selections: list[Selection], log) -> None:
    """scored.jsonl, scored.parquet and the selections, streamed: a window of input records at a time."""
    run = RunStore(config.out)
    n_layers = int(run.manifest().get("model", {}).get("num_layers") or 0)
    index = ScoreIndex(run, n_layers or 1, config.compute.recipe == "oda")
    take = config.subsample()
    fit = length_fit(index, source, window, column, take) if residualize else None
    ranked = column + "_given_length" if residualize else column
    values: list[tuple[float, int]] = []
    jsonl = out / "scored.jsonl"
    tmp = jsonl.with_name(jsonl.name + ".tmp")
    parquet = ParquetAppender(out / "scored.parquet", typed=lambda column: column.startswith(PREFIX))
    scored_count = total = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for start, stop, records in source.picked(window, take):
            rows = index.rows(start, stop)
            batch = []
            for i, record in records:
                scores = rows.loc[i].to_dict() if i in rows.index else {PREFIX + "status": "missing"}
                scores = {k: plain(v) for k, v in scores.items()}
                if fit is not None:
                    scores[ranked] = residual(scores, column, fit)
                if scores.get(PREFIX + "status") == "ok" and scores.get(ranked) is not None:
                    values.append((scores[ranked], i))
                    scored_count += 1
                batch.append({**record, **scores})
            fh.write("".join(json_line(r) + "\n" for r in batch))
            parquet.append(batch)
            total += len(records)
    tmp.replace(jsonl)
    parquet.close()
    for selection in selections:
        chosen = select(values, selection)
        path = out / selection.file_name(source.suffix)
        write_selected(path, source, window, chosen, take)
        log(f"{selection.side} {len(chosen)} by {selection.column}: {path}")
    log(f"scored {scored_count} of {total} records: {jsonl}")


def length_fit(index: ScoreIndex, source: RecordSource, window: int, column: str, take) -> tuple[float, float]:
    """(a, b) of the least-squares fit score = a + b·log(response tokens) over the scored records."""
    xs, ys = [], []
    for start, stop, records in source.picked(window, take):
        rows = index.rows(start, stop)
        rows = rows[rows.index.isin([i for i, _ in records])]
        if column not in rows.columns:
            continue
        ok = rows[(rows[PREFIX + "status"] == "ok") & rows[column].notna() & (rows[PREFIX + "response_tokens"] > 0)]
        xs += np.log(ok[PREFIX + "response_tokens"].astype(float)).tolist()
        ys += ok[column].astype(float).tolist()
    if len(xs) < 3:
        raise InputError(f"--residualize length needs at least 3 scored records, got {len(xs)}")
    b, a = np.polyfit(np.asarray(xs), np.asarray(ys), 1)
    return float(a), float(b)


def residual(scores: dict, column: str, fit: tuple[float, float]):
    value, tokens = scores.get(column), scores.get(PREFIX + "response_tokens")
    if value is None or not tokens:
        return None
    return float(value - (fit[0] + fit[1] * math.log(tokens)))


def plain(value):
    """JSON-ready: NaN as None, numpy scalars as Python ones."""
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def select(values: list[tuple[float, int]], selection: Selection) -> list[int]:
    """Indices (input order) of the selected records: best first by the score, ties by input order."""
    sign = -1 if selection.side == "top" else 1
    ranked = sorted(values, key=lambda v: (sign * v[0], v[1]))
    return sorted(i for _, i in ranked[:selection.size(len(values))])


def write_selected(path: Path, source: RecordSource, window: int, chosen: list[int], take) -> None:
    """The chosen records unchanged, in input order, in the input's format."""
    wanted = set(chosen)
    picked = [r for _, _, records in source.picked(window, take) for i, r in records if i in wanted]
    write_records(path, picked, like=source.suffix)
