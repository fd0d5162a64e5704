"""``layergrad score``: a dataset back with every record's gradient scores, and its top or bottom K
as a training file in the input's own format.

    layergrad score data.jsonl --model smollm2-135m-instruct --out scored/ --ifd --top 0.1 --by effective_rank

Underneath is a normal run (``OUT/run``: resumable, ``kill -9`` safe, refused if its configuration
changes). Written: ``OUT/scored.jsonl`` and ``OUT/scored.parquet`` (every input record with all its
fields, in input order, plus the score columns) and, with ``--top``/``--bottom``, ``OUT/top-<K>-<by>.<ext>``
(the selected records unchanged, in input order, in the input's format). Score columns (prefix
``lg_``, so no input field is overwritten): ``lg_nuclear_norm`` and ``lg_effective_rank`` (means over
layers and modules), the same per module kind (``lg_nuclear_norm_q_proj``) and per depth segment
(``lg_effective_rank_early|middle|late``), ``lg_loss``, ``lg_response_tokens``, with ``--ifd``
``lg_ifd`` and ``lg_loss_direct``, and ``lg_status``/``lg_reason`` (a skipped record has no scores
and is never selected). ``--by`` takes a score's name with or without the prefix; ties are broken by
input order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from layergrad.analysis.curves import segment_bounds
from layergrad.data.samples import read_records, split_fields
from layergrad.engine.projections import KINDS
from layergrad.errors import InputError, did_you_mean
from layergrad.runs.config import RunConfig
from layergrad.runs.runner import run
from layergrad.runs.store import load_run, write_atomic

PREFIX = "lg_"
STATISTICS = ("nuclear_norm", "effective_rank")
SEGMENTS = ("early", "middle", "late")
CONDITION = "data"


def score_names(ifd: bool) -> list[str]:
    """Every score ``--by`` accepts (without the prefix)."""
    names = [f"{s}{suffix}" for s in STATISTICS for suffix in ["", *(f"_{k}" for k in KINDS),
                                                                   *(f"_{g}" for g in SEGMENTS)]]
    return names + ["loss", "response_tokens"] + (["ifd", "loss_direct"] if ifd else [])


def score_column(by: str, ifd: bool) -> str:
    """The column ``--by`` names; an unknown name is a one-line InputError listing the scores."""
    name = by[len(PREFIX):] if by.startswith(PREFIX) else by
    names = score_names(ifd)
    if name in ("ifd", "loss_direct") and not ifd:
        raise InputError(f"--by {by} needs --ifd (the IFD is computed only when asked)")
    if name not in names:
        raise InputError(f"unknown score '{by}'.{did_you_mean(name, names)} Scores: {', '.join(names)}")
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
        count = f"{self.count:g}"
        return f"{self.side}-{count}-{self.column[len(PREFIX):]}{suffix}"


def score(data: str, out: str | Path, *, model: str = "smollm2-135m-instruct", top=None, bottom=None,
          by: str = "effective_rank", log=print, **options) -> pd.DataFrame:
    """Score every record of ``data`` into ``out``; select its top/bottom records by ``by`` when asked.

    ``options``: any RunConfig, load or compute option (``ifd=True``, ``limit``, ``max_length``, ...).
    Returns the scored records (input fields and score columns) as a DataFrame.
    """
    config = RunConfig.build(model=model, data={CONDITION: str(data)}, out=str(Path(out) / "run"), **options)
    column = score_column(by, config.compute.ifd)
    selections = [Selection.parse(side, value, column) for side, value in (("top", top), ("bottom", bottom))
                  if value is not None]
    records, suffix = input_records(str(data), config.paper_data)  # bad input: before the model loads
    run(config, log=log)
    stats, samples, manifest = load_run(Path(out) / "run")
    scored = scored_records(records, score_table(stats, samples), config.limit)
    out = Path(out)
    write_records(out / "scored.jsonl", scored)
    write_records(out / "scored.parquet", scored)
    for selection in selections:
        chosen = select(scored, selection)
        write_records(out / selection.file_name(suffix), [records[i] for i in chosen], like=suffix)
        log(f"{selection.side} {len(chosen)} by {column}: {out / selection.file_name(suffix)}")
    log(f"scored {sum(r[PREFIX + 'status'] == 'ok' for r in scored)} of {len(scored)} records: {out / 'scored.jsonl'}")
    return pd.DataFrame(scored)


def input_records(source: str, paper_data: str | None) -> tuple[list[dict], str]:
    """The input's raw records and its file suffix (sources that are not files come back as JSONL)."""
    path, _ = split_fields(source)
    file = Path(str(path)).expanduser()
    if file.is_file():
        records = read_records(file)
        return [r if isinstance(r, dict) else {"record": r} for r in records], file.suffix.lower()
    from layergrad.data.samples import load_samples

    samples = load_samples(source, strict=False, paper_data=paper_data)
    return [{"instruction": s.prompt, "output": s.response} for s in samples], ".jsonl"


def score_table(stats: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """source_index -> every score column of a computed sample (NaN columns for skipped ones)."""
    stats = stats[stats.condition == CONDITION]
    samples = samples[samples.condition == CONDITION].set_index("source_index")
    n_layers = int(stats.layer.max()) + 1 if len(stats) else 0
    parts = {}
    for name in STATISTICS:
        by_sample = stats.groupby("sample_id")[name]
        parts[name] = by_sample.mean()
        kinds = sorted(set(stats.module), key=lambda k: (k not in KINDS, KINDS.index(k) if k in KINDS else 0, k))
        for kind in kinds:
            parts[f"{name}_{kind}"] = stats[stats.module == kind].groupby("sample_id")[name].mean()
        for segment in SEGMENTS:
            lo, hi = segment_bounds(n_layers)[segment] if n_layers else (0, 0)
            parts[f"{name}_{segment}"] = stats[(stats.layer >= lo) & (stats.layer < hi)].groupby("sample_id")[name].mean()
    table = pd.DataFrame(parts).add_prefix(PREFIX)
    table = table.reindex(samples.sample_id.to_numpy())
    table.index = samples.index
    table[PREFIX + "loss"] = samples.loss.where(samples.status == "ok")
    table[PREFIX + "response_tokens"] = samples.n_response_tokens.where(samples.status != "skipped")
    for name in ("ifd", "loss_direct"):
        if name in samples.columns:
            table[PREFIX + name] = samples[name]
    if "ifd_note" in samples.columns:
        table[PREFIX + "ifd_note"] = samples.ifd_note
    table[PREFIX + "status"] = samples.status
    table[PREFIX + "reason"] = samples.reason
    table[PREFIX + "sample_id"] = samples.sample_id
    return table


def scored_records(records: list[dict], table: pd.DataFrame, limit: int | None) -> list[dict]:
    """Each input record (in order; the first ``limit`` with --limit) with its score columns."""
    out = []
    for index, record in enumerate(records[:limit] if limit else records):
        scores = table.loc[index].to_dict() if index in table.index else {PREFIX + "status": "missing"}
        out.append({**record, **{k: plain(v) for k, v in scores.items()}})
    return out


def plain(value):
    """JSON-ready: NaN as None, numpy scalars as Python ones."""
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def select(scored: list[dict], selection: Selection) -> list[int]:
    """Indices (input order) of the selected records: best first by the score, ties by input order."""
    ok = [i for i, r in enumerate(scored) if r.get(PREFIX + "status") == "ok" and r.get(selection.column) is not None]
    sign = -1 if selection.side == "top" else 1
    ranked = sorted(ok, key=lambda i: (sign * scored[i][selection.column], i))
    return sorted(ranked[:selection.size(len(ok))])


def write_records(path: Path, records: list[dict], like: str | None = None) -> Path:
    """Records as ``path``'s format (.json list, .jsonl, .csv, .parquet), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = (like or path.suffix).lower()
    if suffix in (".jsonl", ".json"):
        lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
        text = "\n".join(lines) + "\n" if suffix == ".jsonl" else "[\n" + ",\n".join(lines) + "\n]\n"
        write_atomic(path, text if records or suffix == ".jsonl" else "[]\n")
        return path
    frame = pd.DataFrame(records)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        try:
            frame.to_parquet(tmp, index=False)
        except (ValueError, TypeError, ArithmeticError, ImportError):  # fields of mixed or nested types
            as_text = {c: frame[c].map(lambda v: v if v is None or isinstance(v, (str, int, float, bool))
                                       else json.dumps(v, default=str)).astype(object) for c in frame.columns}
            pd.DataFrame(as_text).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
