"""The original code's per-sample JSONL format (docs/guide/how-it-works.md, "The measurement"): export a run to it, import it.

One line per sample, keys in the original's order: ``instruction``, ``output``, ``loss``,
then for every layer and module ``model.layers.{i}.self_attn.q_proj.weight`` (``mlp.`` for
gate/up/down) -> ``{frobenius_norm, S_sum, S_max, S_min}`` (+ ``S_list`` with --spectrum): the
registered statistics under their original keys (engine/statistics.py). layergrad adds its other
statistics inside each entry and the sample's bookkeeping at the end of the line, so export ->
import is exact. The original's ``M_mean/M_max/M_min`` (entry
statistics of G, which needs G materialised) are not written; on import they are ignored.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from layergrad.data.samples import content_id
from layergrad.engine import statistics as registry
from layergrad.schema import SAMPLE_COLUMNS, samples_frame, stats_frame
from layergrad.engine.options import KINDS, kind_order
from layergrad.engine.projections import MLP_KINDS
from layergrad.errors import InputError
from layergrad.runs.store import load_run, write_atomic, write_parquet_atomic

BOOKKEEPING = ("sample_id", "source_index", "n_tokens", "n_prompt_tokens", "n_response_tokens", "truncated",
               "status", "reason", "boundary")
PARAM_KEY = re.compile(r"^(?:.*\.)?layers\.(\d+)\.(?:self_attn|mlp|attn)\.(\w+?)(?:_proj)?\.weight$")


# ----------------------------------------------------------------------------- export

def export_run(run: str | Path, out: str | Path) -> list[Path]:
    """Write one ``{condition}.jsonl`` per condition of ``run`` into ``out``; return the paths."""
    stats, samples, _ = load_run(run)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    written = []
    for condition, rows in samples.groupby("condition", sort=False):
        by_sample = {sid: g for sid, g in stats[stats.condition == condition].groupby("sample_id")}
        lines = [json.dumps(sample_line(s, by_sample[s.sample_id]), ensure_ascii=False)
                 for s in rows.itertuples() if s.sample_id in by_sample]
        path = out / f"{safe_name(condition)}.jsonl"
        write_atomic(path, "".join(line + "\n" for line in lines))
        written.append(path)
    return written


def sample_line(sample, stats: pd.DataFrame) -> dict:
    """One sample in the original layout (plus layergrad's extras)."""
    line = {"instruction": sample.prompt, "output": sample.response, "loss": float(sample.loss)}
    stats = stats.assign(_k=stats.module.map(kind_order)).sort_values(["layer", "_k"])
    for row in stats.itertuples():
        line[param_key(row.layer, row.module) if row.module in KINDS else row.param] = entry(row)
    for key in BOOKKEEPING:
        value = getattr(sample, key)
        line[key] = value.item() if hasattr(value, "item") else value
    return line


def param_key(layer: int, module: str) -> str:
    block = "mlp" if module in MLP_KINDS else "self_attn"
    return f"model.layers.{int(layer)}.{block}.{module}.weight"


def key_of(name: str) -> str:
    """A statistic's key in the JSONL: the original's where it has one (S_sum ...), else its name."""
    return registry.STATISTICS[name].original or name


def entry(row) -> dict:
    values = {key_of(name): float(getattr(row, name)) for name in registry.names() if hasattr(row, name)}
    values["rank_bound"] = float(row.rank_bound)
    spectrum = getattr(row, "spectrum", None)
    if spectrum is not None and len(spectrum):
        values["S_list"] = [float(v) for v in spectrum]
    return values


def safe_name(condition: str) -> str:
    return re.sub(r"[^\w@.+-]", "_", condition)


# ----------------------------------------------------------------------------- import

def import_files(sources: list[str], out: str | Path) -> Path:
    """Read the original's JSONL files (or folders of them) into a run directory at ``out``.

    A source is ``PATH`` (condition = file name without extension) or ``NAME=PATH``.
    """
    conditions = {}
    for source in sources:
        name, _, path = source.rpartition("=") if "=" in source else ("", "", source)
        for file in expand(Path(path)):
            conditions[name or file.stem] = file
    stat_rows, sample_rows = [], []
    for condition, file in conditions.items():
        for index, record in enumerate(read_lines(file)):
            stats, sample = from_line(record, condition, index, where=f"{file}:{index + 1}")
            stat_rows += stats
            sample_rows.append(sample)
    if not sample_rows:
        raise InputError(f"no samples found in {', '.join(sources)}")
    return write_imported(out, stats_frame(stat_rows), samples_frame(sample_rows), conditions)


def expand(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
        if not files:
            raise InputError(f"{path} holds no .jsonl or .json files")
        return files
    if not path.exists():
        raise InputError(f"{path} does not exist; give a .jsonl file or a folder of them")
    return [path]


def read_lines(path: Path):
    """JSON lines, or one JSON list; a line that does not parse is an error naming it."""
    text = path.read_text(encoding="utf-8", errors="strict") if path.stat().st_size else ""
    if text.lstrip().startswith("["):
        yield from json.loads(text)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def from_line(record: dict, condition: str, index: int, *, where: str) -> tuple[list[dict], dict]:
    """One original line -> (stats rows, sample row)."""
    if not isinstance(record, dict) or "instruction" not in record:
        raise InputError(f"{where}: not a layer-gradient record (no 'instruction' key)")
    prompt, response = str(record["instruction"]), str(record.get("output", ""))
    sample_id = record.get("sample_id") or content_id((), prompt, response)
    stats = []
    for key, values in record.items():
        match = PARAM_KEY.match(key)
        if match and isinstance(values, dict):
            layer, kind = int(match.group(1)), match.group(2)
            kind = kind if kind.endswith("_proj") else f"{kind}_proj"
            stats.append({"sample_id": sample_id, "condition": condition, "layer": layer, "module": kind,
                          "param": key, "route": "imported", **statistics(values)})
    if not stats:
        raise InputError(f"{where}: no 'model.layers.N.<block>.<kind>_proj.weight' entries")
    loss = float(record.get("loss", math.nan))
    finite = math.isfinite(loss) and all(r["finite"] for r in stats)
    sample = {"sample_id": sample_id, "condition": condition, "source_index": index, "loss": loss,
              "n_tokens": 0, "n_prompt_tokens": 0, "n_response_tokens": 0, "truncated": False,
              "status": "ok" if finite else "nonfinite", "reason": "" if finite else "non-finite values",
              "boundary": "", "prompt": prompt, "response": response}
    sample.update({k: record[k] for k in BOOKKEEPING if k in record})
    return stats, sample


def statistics(values: dict) -> dict:
    """Our statistics from an entry: from S_list when present, else those the registry can derive from
    the original's scalars (S_sum, S_max, S_min, frobenius_norm; the rest NaN); the values our own
    export wrote are taken as they are (exact)."""
    if values.get("S_list"):
        sigma = torch.tensor(values["S_list"], dtype=torch.float64).sort(descending=True).values
        spectrum = registry.Spectrum((sigma**2).unsqueeze(0), sigma.numel())
        rank_bound = float(values.get("rank_bound", sigma.numel()))
    else:
        scalar = lambda key: torch.tensor([number(values, key)], dtype=torch.float64)  # noqa: E731
        spectrum = registry.Spectrum.from_scalars(nuclear=scalar("S_sum"), sigma_max=scalar("S_max"),
                                                  sigma_min=scalar("S_min"), frobenius_sq=scalar("frobenius_norm")**2)
        rank_bound = number(values, "rank_bound")
    out = dict(zip(registry.names(), registry.evaluate(spectrum)[0].tolist()))
    out.update({name: number(values, key_of(name)) for name in registry.names() if key_of(name) in values})
    out["rank_bound"] = rank_bound
    out["finite"] = bool(np.isfinite([out["nuclear_norm"], out["sigma_max"], out["frobenius_norm"]]).all())
    return out


def number(values: dict, key: str) -> float:
    try:
        return float(values.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan


def write_imported(out, stats: pd.DataFrame, samples: pd.DataFrame, conditions: dict) -> Path:
    root = Path(out)
    if (root / "stats.parquet").exists():
        raise InputError(f"{root} already holds a run; choose a new --out")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {root}: {exc.strerror}; choose another --out") from None
    samples = samples.reindex(columns=list(SAMPLE_COLUMNS))
    if stats.rank_bound.notna().all():
        stats["rank_bound"] = stats.rank_bound.astype("int64")
    write_parquet_atomic(stats, root / "stats.parquet")
    write_parquet_atomic(samples, root / "samples.parquet")
    manifest = {"imported": {"format": "layer-gradient", "files": {c: str(p) for c, p in conditions.items()}},
                "config": {"data": {c: str(p) for c, p in conditions.items()}},
                "model": {"alias": "imported", "layers": int(stats.layer.max()) + 1}}
    write_atomic(root / "run.json", json.dumps(manifest, indent=2))
    return root
