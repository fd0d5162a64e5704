"""layergrad as a Ray Data stage: score records where a curation pipeline already runs (``pip install
layergrad[ray]``).

    import ray
    from layergrad.integrations.ray import GradientScorer, residualize_length, select

    ds = ray.data.read_json("s3://bucket/sft/", lines=True)
    scored = ds.map_batches(GradientScorer, fn_constructor_kwargs={"model": "smollm2-135m-instruct", "layers": "-1",
                            "modules": "attn"}, batch_size=64, batch_format="pyarrow", concurrency=4, num_gpus=1)
    best = select(residualize_length(scored, "lg_effective_rank"), "lg_effective_rank_given_length", top=0.1)
    best.write_parquet("s3://bucket/sft-top10/")

``GradientScorer`` loads the model once per actor and scores each batch with the engine and options of
``layergrad score`` (scoring.score_batch): the batch comes back with the same ``lg_*`` columns, the same numbers.
A record that cannot be scored keeps its row with ``lg_status`` and ``lg_reason`` saying why (an error inside a
batch is retried record by record, so one bad record never fails its batch or its actor). ``select`` and
``residualize_length`` work on the scored dataset with Ray Data's aggregates and filters (no sort, no shuffle).

``score`` is ``layergrad score --engine ray``: Ray Data reads the input (Parquet, JSONL, JSON, CSV; local or
object-store paths), GPU or CPU actors score it, and OUT gets ``scored.parquet/`` and ``scored.jsonl/`` (folders of
part files, in input order), the selections and ``ray.json``. This module imports ``ray`` only inside functions
that need it; the rest of layergrad never imports this module.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa

from layergrad.errors import InputError, LayergradError
from layergrad.scoring import PREFIX, TEXT_SCORES, Selection, score_batch, score_column, score_columns

RUN_KEYS = ("limit", "head", "subsample_seed", "out", "data", "overwrite", "quiet")  # a whole run's, not a stage's
FAILED = "failed"


class GradientScorer:
    """A ``map_batches`` stage: each batch (pandas or pyarrow) back with its ``lg_*`` score columns.

    Args:
        model: Alias, local folder, .gguf file or hub id (as ``layergrad score --model``).
        fields: The column mapping for other column names, e.g. ``{"prompt": "question", "response": "answer"}``.
        index_column: A column holding each record's index (an integer unique in the dataset): it makes
            ``lg_sample_id`` the content hash ``@`` that index, as ``layergrad score`` writes it; else the id is
            the content hash alone.
        log: Where the coverage line goes (an actor's output reaches the driver's console).
        **options: Any load or compute option of ``layergrad score``: ``layers="-1"``, ``modules="attn"``,
            ``recipe="oda"``, ``ifd=True``, ``max_length``, ``dtype``, ``device``, ``threads``, ...
    """

    def __init__(self, model: str = "smollm2-135m-instruct", *, fields: dict | None = None,
                 index_column: str | None = None, log=print, **options):
        from layergrad.engine.compute import model_coverage
        from layergrad.engine.projections import coverage_line
        from layergrad.engine.threads import set_budget
        from layergrad.models import load_model

        config = stage_config(model, options)
        self.m = load_model(config.model, **config.load.to_dict(), reinit=config.compute.reinit, log=log)
        set_budget(config.compute.threads)
        self.options, self.fields, self.index_column = config.compute, fields, index_column
        self.columns = score_columns(self.m, self.options)
        log(coverage_line(model_coverage(self.m, self.options)))

    def __call__(self, batch):
        arrow = isinstance(batch, pa.Table)
        records = batch.to_pylist() if arrow else [plain_record(r) for r in batch.to_dict("records")]
        indices = self.indices(records)
        scores = self.scores(list(zip(indices, records)))
        if not self.index_column:  # a position in the batch means nothing outside it
            scores[PREFIX + "sample_id"] = [content_only(i) for i in scores[PREFIX + "sample_id"]]
            scores[PREFIX + "reason"] = [unnumbered(r, i) for i, r in zip(indices, scores[PREFIX + "reason"])]
        return with_scores(batch, scores, arrow)

    def indices(self, records: list[dict]) -> list[int]:
        if not self.index_column:
            return list(range(len(records)))
        values = [r.get(self.index_column) for r in records]
        if any(not isinstance(v, (int, np.integer)) for v in values):
            raise InputError(f"index_column '{self.index_column}' must hold an integer in every record")
        return [int(v) for v in values]

    def scores(self, records: list[tuple[int, dict]]) -> pd.DataFrame:
        """The batch's score rows in its order; an error inside the batch: each record alone, a record that
        still fails gets status 'failed' and the error as its reason."""
        try:
            table = score_batch(self.m, records, self.options, self.fields)
        except Exception:  # noqa: BLE001 - one record's failure must not lose the batch: isolate it
            if len(records) == 1:
                raise
            return pd.concat([self.one(record) for record in records])
        return table.reset_index(drop=True)

    def one(self, record: tuple[int, dict]) -> pd.DataFrame:
        try:
            return self.scores([record])
        except Exception as exc:  # noqa: BLE001 - recorded as the record's reason, never a dropped row
            row = pd.DataFrame([{PREFIX + "status": FAILED, PREFIX + "reason": f"{type(exc).__name__}: {exc}"}])
            return row.reindex(columns=self.columns)


def stage_config(model: str, options: dict):
    """The RunConfig of a stage's options (load and compute); a whole run's keys are refused by name."""
    from layergrad.runs.config import RunConfig

    given = sorted(k for k in options if k in RUN_KEYS)
    if given:
        raise InputError(f"{', '.join(given)}: a whole run's option, not a stage's; subsample or write with Ray Data "
                         "itself (ds.limit, ds.random_sample, ds.write_parquet)")
    return RunConfig.build(model=model, **options)


def plain_record(record: dict) -> dict:
    """A pandas row as the record it was read from: NaN (a missing field) as None, numpy values as Python's."""
    return {k: plain_value(v) for k, v in record.items()}


def plain_value(value):
    if isinstance(value, np.ndarray):
        return [plain_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def unnumbered(reason, position: int):
    """'record 7 has an empty response' -> 'the record has an empty response' (7 being a batch position)."""
    return re.sub(rf"^record {position}\b", "the record", reason) if isinstance(reason, str) else reason


def content_only(sample_id):
    return sample_id.rsplit("@", 1)[0] if isinstance(sample_id, str) else sample_id


def with_scores(batch, scores: pd.DataFrame, arrow: bool):
    """The batch with the score columns (an input column of the same name replaced), numbers as float64 and
    text as string in every batch alike."""
    columns = {name: score_array(scores[name]) for name in scores.columns}
    if arrow:
        table = batch.drop_columns([c for c in batch.column_names if c in columns])
        for name, values in columns.items():
            table = table.append_column(name, values)
        return table
    frame = batch.drop(columns=[c for c in batch.columns if c in columns]).reset_index(drop=True)
    return pd.concat([frame, pd.DataFrame({name: values.to_pandas() for name, values in columns.items()})], axis=1)


def score_array(values: pd.Series) -> pa.Array:
    if values.name in TEXT_SCORES:
        return pa.array([v if isinstance(v, str) else None for v in values], type=pa.string())
    return pa.array(pd.to_numeric(values, errors="coerce").astype(float), type=pa.float64(), from_pandas=True)


# ----------------------------------------------------------------------------- steps on a scored dataset

def residualize_length(ds, column: str):
    """``ds`` with ``<column>_given_length``: the residual of ``column`` after a least-squares fit on log response
    tokens over the scored records (what ``layergrad score --residualize length`` writes), the fit from two Ray
    Data aggregates (means, then centred sums)."""
    require_columns(ds, column)
    ok = ds.map_batches(fit_rows, fn_kwargs={"column": column}, batch_format="pandas")
    n = ok.count()
    if n < 3:
        raise InputError(f"--residualize length needs at least 3 scored records, got {n}")
    mean_x, mean_y = ok.mean("x"), ok.mean("y")
    sums = ok.map_batches(centred, fn_kwargs={"mean_x": mean_x, "mean_y": mean_y}, batch_format="pandas")
    sxx, sxy = (sums.sum(name) for name in ("xx", "xy"))
    if sxx <= 0:
        raise InputError("--residualize length needs responses of more than one length")
    slope = sxy / sxx
    fit = (mean_y - slope * mean_x, slope)
    return ds.map_batches(add_residual, fn_kwargs={"column": column, "fit": fit}, batch_format="pandas")


def require_columns(ds, column: str) -> None:
    """On the driver, before any task: the scored dataset has the score column and the status and length."""
    have = set(ds.columns())
    missing = [c for c in (column, PREFIX + "status", PREFIX + "response_tokens") if c not in have]
    if missing:
        known = sorted(c for c in have if c.startswith(PREFIX))
        raise InputError(f"no column {', '.join(missing)} in the scored dataset (its scores: "
                         f"{', '.join(known) or 'none'}; score it with GradientScorer first)")


def fit_rows(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """(x = log response tokens, y = score) of the rows the length fit uses (as scoring.length_fit)."""
    tokens = pd.to_numeric(frame[PREFIX + "response_tokens"], errors="coerce")
    y = pd.to_numeric(frame[column], errors="coerce")
    keep = (frame[PREFIX + "status"] == "ok") & y.notna() & (tokens > 0)
    return pd.DataFrame({"x": np.log(tokens[keep].astype(float)), "y": y[keep].astype(float)})


def centred(frame: pd.DataFrame, mean_x: float, mean_y: float) -> pd.DataFrame:
    x, y = frame.x - mean_x, frame.y - mean_y
    return pd.DataFrame({"xx": x * x, "xy": x * y})


def add_residual(frame: pd.DataFrame, column: str, fit: tuple[float, float]) -> pd.DataFrame:
    tokens = pd.to_numeric(frame[PREFIX + "response_tokens"], errors="coerce").astype(float)
    value = pd.to_numeric(frame[column], errors="coerce").astype(float)
    residual = value - (fit[0] + fit[1] * np.log(tokens.where(tokens > 0)))
    return frame.assign(**{column + "_given_length": residual})


def select(ds, column: str, *, top=None, bottom=None):
    """The top (or bottom) K records by ``column`` (K, or a fraction in (0, 1) of the scored records); ties by
    ``lg_sample_id``; records not scored are never selected. Each block offers its own best K (score and id
    only), the K-th best of those is the cut, and one filter keeps the records up to it, in the dataset's
    order: no shuffle, and no record leaves its block."""
    if (top is None) == (bottom is None):
        raise InputError("select takes one of top= or bottom=")
    side, value = ("top", top) if top is not None else ("bottom", bottom)
    selection = Selection.parse(side, value, column)
    require_columns(ds, column)
    ok = ds.map_batches(scored_rows, fn_kwargs={"column": column}, batch_format="pandas")
    k = selection.size(ok.count())
    if k == 0:
        return ok.limit(0)
    offered = ok.map_batches(best_keys, fn_kwargs={"column": column, "k": k, "top": side == "top"},
                             batch_format="pandas", batch_size=None).to_pandas()
    cut = ranked(offered, column, side == "top").iloc[k - 1]
    return ok.map_batches(up_to, fn_kwargs={"column": column, "cut": (cut[column], cut[PREFIX + "sample_id"]),
                                            "top": side == "top"}, batch_format="pandas").limit(k)


def scored_rows(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame[(frame[PREFIX + "status"] == "ok") & pd.to_numeric(frame[column], errors="coerce").notna()]


def ranked(frame: pd.DataFrame, column: str, top: bool) -> pd.DataFrame:
    """Best first: by the score (descending for top), then by lg_sample_id."""
    return frame.sort_values([column, PREFIX + "sample_id"], ascending=[not top, True], kind="mergesort")


def best_keys(frame: pd.DataFrame, column: str, k: int, top: bool) -> pd.DataFrame:
    """A block's best ``k`` (score, id) pairs."""
    return ranked(frame[[column, PREFIX + "sample_id"]], column, top).head(k)


def up_to(frame: pd.DataFrame, column: str, cut: tuple, top: bool) -> pd.DataFrame:
    """The rows ranked at or before ``cut`` (score, id)."""
    values, ids = pd.to_numeric(frame[column]), frame[PREFIX + "sample_id"]
    better = values > cut[0] if top else values < cut[0]
    return frame[better | ((values == cut[0]) & (ids <= cut[1]))]


# ----------------------------------------------------------------------------- layergrad score --engine ray

def score(data: str, out: str, *, model: str = "smollm2-135m-instruct", top=None, bottom=None,
          by: str = "effective_rank", residualize: str | None = None, window: int = 256, address: str | None = None,
          num_gpus: float = 0, concurrency: int = 1, log=print, **options) -> dict:
    """``layergrad score --engine ray``: read with Ray Data, score on ``concurrency`` actors of ``num_gpus`` GPUs,
    write OUT/scored.parquet/ and OUT/scored.jsonl/ (in input order), the selections and OUT/ray.json."""
    if options.get("quiet"):
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read when ray.data is imported
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'layergrad[ray]'") from None
    try:
        return run_pipeline(data, out, model=model, top=top, bottom=bottom, by=by, residualize=residualize,
                            window=window, address=address, num_gpus=num_gpus, concurrency=concurrency, log=log,
                            **options)
    except Exception as exc:
        raise layergrad_cause(exc) or exc


def layergrad_cause(exc: BaseException) -> LayergradError | None:
    """The LayergradError a Ray task or actor raised (Ray wraps it, with the remote traceback), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None)  # a RayTaskError's original exception
        if isinstance(inner, BaseException):
            exc = inner
        elif isinstance(exc, LayergradError):
            return exc
        else:
            exc = exc.__cause__ or exc.__context__
    return None


def run_pipeline(data: str, out: str, *, model: str, top, bottom, by: str, residualize: str | None, window: int,
                 address: str | None, num_gpus: float, concurrency: int, log, **options) -> dict:
    import ray

    quiet, overwrite, head = options.pop("quiet", False), options.pop("overwrite", False), options.pop("head", None)
    if options.get("limit") is not None:
        raise InputError("--limit draws records by position, which Ray Data does not number; use --head N, or "
                         "subsample upstream (ds.random_sample)")
    options.pop("limit", None)
    options.pop("subsample_seed", None)
    path, fields = split_source(data)
    config = stage_config(model, options)
    column = score_column(by, config.compute.ifd)
    order_by = column + "_given_length" if residualize else column
    selections = [Selection.parse(side, value, order_by) for side, value in (("top", top), ("bottom", bottom))
                  if value is not None]  # checked before Ray starts
    target = Output(out, overwrite)
    start_ray(address, quiet)
    clock, started = time.perf_counter(), datetime.now(timezone.utc)
    stage = {"model": model, "fields": fields, **options}
    described = ray.get(ray.remote(describe_stage).options(num_cpus=1, num_gpus=num_gpus).remote(stage))
    log(described["coverage_line"])
    ds = read(path)
    if head is not None:
        ds = ds.limit(head)
    ds = spread(ds, window, concurrency)
    scored = ds.map_batches(GradientScorer, fn_constructor_kwargs={**stage, "log": lambda *a: None},
                            batch_size=window, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(
                                size=concurrency), num_gpus=num_gpus or None).materialize()
    if residualize:
        scored = residualize_length(scored, column).materialize()
    scored.write_parquet(target.path("scored.parquet"), mode="overwrite")
    scored.write_json(target.path("scored.jsonl"), mode="overwrite")
    written = {}
    for selection in selections:
        chosen = select(scored, order_by, **{selection.side: selection.count}).materialize()
        name = selection.file_name(suffix_of(path))
        write_like(chosen.drop_columns(score_names(chosen)), target.path(name), suffix_of(path))
        written[name] = chosen.count()
        log(f"{selection.side} {written[name]} by {order_by}: {target.path(name)}")
    counts = scored.groupby(PREFIX + "status").count().to_pandas()
    status = dict(zip(counts[PREFIX + "status"], counts.iloc[:, 1].astype(int)))
    summary = manifest(data, config, status, written, started, time.perf_counter() - clock,
                       num_gpus=num_gpus, concurrency=concurrency, window=window, head=head,
                       identity=described["identity"], coverage=described["coverage"])
    target.write_text("ray.json", json.dumps(summary, indent=2, default=str))
    log(f"scored {status.get('ok', 0)} of {sum(status.values())} records: {target.path('scored.parquet')}"
        + "".join(f"; {n} {s}" for s, n in status.items() if s != "ok"))
    return summary


def spread(ds, window: int, concurrency: int):
    """The records in blocks of at most ``window``, and at least one block per actor (an actor is handed whole
    blocks, and a reader makes one block of a small file; order kept: no shuffle), materialised before the
    actors start: else they may hold every CPU while the split still waits for one."""
    count = ds.count()
    return ds.repartition(max(concurrency, math.ceil(count / window)), shuffle=False).materialize() if count else ds


def start_ray(address: str | None, quiet: bool) -> None:
    """Join ``address`` (else RAY_ADDRESS, else a local instance); the scored files keep the input's order."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=not quiet, include_dashboard=False,
                 logging_level=logging.WARNING if quiet else logging.INFO)
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = not quiet


def describe_stage(stage: dict) -> dict:
    """Run once, as a task with one actor's resources, before the actors start: the model loads (a bad name or
    option fails here, in one line) and says what it measures (run.json's coverage)."""
    from layergrad.engine.compute import model_coverage
    from layergrad.engine.projections import coverage_line

    scorer = GradientScorer(**stage, log=lambda *a: None)
    covered = model_coverage(scorer.m, scorer.options)
    return {"coverage": covered, "coverage_line": coverage_line(covered), "identity": scorer.m.identity}


def split_source(data: str) -> tuple[str, dict | None]:
    from layergrad.data.samples import split_fields

    if str(data).startswith(("hf:", "paper:", "builtin:")):
        raise InputError(f"{data}: --engine ray reads files (Parquet, JSONL, JSON, CSV; local or object-store paths); "
                         "score this source with the local engine")
    return split_fields(str(data))


READ_CPUS = 0  # reading is light: a read task must not wait for a CPU that every scoring actor holds
READERS = {".parquet": "read_parquet", ".pq": "read_parquet", ".jsonl": "read_json", ".json": "read_json",
           ".csv": "read_csv"}


def suffix_of(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in READERS:
        raise InputError(f"{path}: --engine ray needs a .parquet, .jsonl, .json or .csv path (a file, or a folder "
                         "named so)")
    return suffix


def read(path: str):
    import ray

    suffix = suffix_of(path)
    reader = getattr(ray.data, READERS[suffix])
    light = {"num_cpus": READ_CPUS, **({"lines": True} if suffix == ".jsonl" else {})}
    try:
        return reader(path, **light)
    except (FileNotFoundError, OSError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None


def write_like(ds, path: str, suffix: str) -> None:
    """Records written in the input's format (JSON as JSON lines)."""
    if READERS[suffix] == "read_parquet":
        ds.write_parquet(path, mode="overwrite")
    elif suffix == ".csv":
        ds.write_csv(path, mode="overwrite")
    else:
        ds.write_json(path, mode="overwrite")


def score_names(ds) -> list[str]:
    return [c for c in ds.columns() if c.startswith(PREFIX)]


def manifest(data: str, config, status: dict, written: dict, started, elapsed: float, **engine) -> dict:
    import ray

    from layergrad import __version__
    from layergrad.runs.runner import git_commit

    return {"layergrad_version": __version__, "git_commit": git_commit(), "engine": "ray",
            "ray_version": ray.__version__, "data": data, "model": config.model,
            "load": config.load.to_dict(), "compute": config.compute.to_dict(), **engine,
            "started": started.isoformat(), "seconds": round(elapsed, 2), "records": status, "selections": written}


class Output:
    """OUT, a local folder or an object-store URI (pyarrow's file systems); an earlier result there is refused
    unless ``overwrite``."""

    def __init__(self, out: str, overwrite: bool):
        from pyarrow import fs

        self.out = str(out).rstrip("/")
        self.fs, self.root = fs.FileSystem.from_uri(self.out if "://" in self.out else absolute(self.out))
        earlier = f"{self.root}/ray.json"
        if self.fs.get_file_info(earlier).type != fs.FileType.NotFound:
            if not overwrite:
                raise InputError(f"{self.out} holds an earlier --engine ray result; pass --overwrite or another --out")
            with self.fs.open_input_stream(earlier) as fh:
                for name in json.loads(fh.read().decode()).get("selections", {}):  # stale selections go too
                    if self.fs.get_file_info(f"{self.root}/{name}").type == fs.FileType.Directory:
                        self.fs.delete_dir(f"{self.root}/{name}")
        self.fs.create_dir(self.root, recursive=True)

    def path(self, name: str) -> str:
        return f"{self.out}/{name}"

    def write_text(self, name: str, text: str) -> None:
        with self.fs.open_output_stream(f"{self.root}/{name}") as fh:
            fh.write(text.encode())


def absolute(path: str) -> str:
    from pathlib import Path

    return str(Path(path).resolve())

