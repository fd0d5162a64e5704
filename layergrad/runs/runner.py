"""The run lifecycle, one for every command: ``run(config)`` loads the model once, computes what the run's
source gives (sources.py: conditions in memory, or a record source in windows) into a run directory,
resumes what a previous attempt left, shares the work between torchrun ranks and writes the manifest."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from layergrad import __version__
from layergrad.data.samples import load_samples
from layergrad.engine.compute import check_usable, make_formatter, model_coverage, run_all
from layergrad.engine.projections import coverage_line
from layergrad.engine.threads import set_budget
from layergrad.errors import InputError
from layergrad.models import load_model
from layergrad.runs import sharding
from layergrad.runs.config import RunConfig
from layergrad.runs.progress import Progress
from layergrad.runs.sources import Conditions
from layergrad.runs.store import RunStore
from layergrad.schema import samples_frame, stats_frame


def run(config: RunConfig, *, model=None, log=print, conditions: dict | None = None, source=None,
        extra: dict | None = None, thread_budget: bool = True, keep_going: bool = False, then=None) -> Path:
    """Compute ``config`` into ``config.out`` and return that directory.

    Under torchrun every rank computes its share of the samples into its own shard and rank 0
    merges them (sharding.py); a rerun resumes from every shard, whatever the world size.
    ``model``: an already loaded model; ``conditions``: {name: samples} instead of loading
    ``config.data``; ``source``: what to compute, in parts (sources.py; default: the conditions);
    ``extra``: more keys for run.json; ``thread_budget=False`` leaves torch's thread setting alone (a
    training loop owns it); ``then()``: runs on the main process once every rank is done.
    """
    world = sharding.current_world()
    log = log if world.main else (lambda *a: None)
    source = source or Conditions(conditions or load_conditions(config))
    store = RunStore(config.out, rank=world.rank if world.distributed else None)
    store.prepare(config, write=False)  # a different config in --out: refused before anything is loaded
    device = rank_device(config.load.device, world)
    m = model or load_model(config.model, **{**config.load.to_dict(), "device": device},
                            reinit=config.compute.reinit, log=log)
    if thread_budget:
        set_budget(config.compute.threads)  # --threads, else affinity / cgroup quota / OMP_NUM_THREADS
    previous = set() if config.overwrite else store.done_ids()
    encode = make_formatter(m, config.compute.resolved()).encode  # the model's limits checked before any sample
    source.check(encode, previous, keep_going, log)
    covered = model_coverage(m, config.compute)  # every decoder weight matrix, measured or not (and why)
    log(coverage_line(covered))
    created_group = sharding.init(world, device)
    try:
        store.prepare(config, write=world.main)
        sharding.barrier(world)
        info = compute_pending(config, m, source, store, world, log)
        sharding.barrier(world)
        if world.main:
            samples = store.finalize(stats_frame, samples_frame)[1] if source.merge else \
                store.read_table("samples", columns=["condition", "status"])
            store.write_manifest({**manifest(config, m, samples, **info), "coverage": covered, "world_size": world.size,
                                  "attributes": condition_attributes(config), **(extra or {})})
            if then is not None:
                then()
        sharding.barrier(world)
    finally:
        sharding.leave(world, created_group)
    return store.root


def load_conditions(config: RunConfig) -> dict:
    """{condition: samples} of ``config.data``; data problems are refused before the model is loaded."""
    if not config.data:
        raise InputError("no data given; pass --data NAME=SOURCE (e.g. --data none=paper:gsm8k/none)")
    take = config.subsample()
    conditions = {name: take.take(load_samples(src, strict=False, paper_data=config.paper_data))
                  for name, src in config.data.items()}
    check_usable(conditions)
    return conditions


def condition_attributes(config: RunConfig) -> dict[str, dict]:
    """{condition: attributes} its sources imply (data/attributes.py), for run.json."""
    from layergrad.data.attributes import attributes_of

    return {name: attributes_of(src) for name, src in config.data.items()}


def compute_pending(config: RunConfig, m, source, store: RunStore, world, log) -> dict:
    """Compute this rank's share of the samples not yet in ``store``, one durable chunk per batch (or per
    part, for a part that asks it); when it started, how long it took and how many tokens it computed."""
    done = store.done_ids()
    parts, size = source.share(world, done)
    started = datetime.now(timezone.utc)
    progress = Progress(quiet=config.quiet, log=log, **size)
    clock, used = time.perf_counter(), {}
    try:
        for part in parts:
            progress.done += part.done
            if any(part.conditions.values()):
                used = compute_part(m, part, config, store, progress, done) or used
    finally:
        progress.close()
    return {"started": started, "elapsed": time.perf_counter() - clock, "tokens": progress.tokens, "plan": used}


def compute_part(m, part, config: RunConfig, store: RunStore, progress: Progress, done: set) -> dict:
    """One part computed and committed: a chunk per batch, or (``part.one_chunk``) one chunk at its end."""
    stats, rows = [], []

    def commit(records) -> None:
        if part.one_chunk:
            stats.extend(records.stats)
            rows.extend(records.samples)
        else:
            store.write_chunk(pd.DataFrame(records.stats), pd.DataFrame(records.samples))
        progress.update(records)

    used = run_all(m, part.conditions, config.compute, commit, skip_ids=done)
    if part.one_chunk:
        store.write_chunk(pd.DataFrame(stats), pd.DataFrame(rows))
    return used


def rank_device(device: str | None, world) -> str:
    """'auto' under torchrun on GPUs means this rank's local GPU."""
    device = device or "auto"
    if world.distributed and device == "auto":
        import torch

        return f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu"
    return device


def manifest(config: RunConfig, m, samples: pd.DataFrame, *, started, elapsed: float, tokens: int,
             plan: dict | None = None) -> dict:
    import torch
    import transformers

    counts = samples.groupby(["condition", "status"]).size().unstack(fill_value=0)
    return {
        "layergrad_version": __version__, "git_commit": git_commit(),
        "config": config.to_dict(), "subsample": config.subsample().describe(), "model": m.identity,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "pandas": pd.__version__,
                     "platform": platform.platform()},
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "this_session": {"seconds": round(elapsed, 2), "tokens": tokens,
                         "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None},
        "samples": {c: {k: int(v) for k, v in row.items()} for c, row in counts.iterrows()},
        "plan": plan or {},  # the kernel plan this session used (engine/plan/)
    }


def git_commit() -> str | None:
    """The commit of layergrad's own checkout (an editable install from git), else None: never the HEAD of
    whatever repository happens to surround an installed package."""
    package = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not top or Path(top).resolve() != package.parent or not (package.parent / "pyproject.toml").is_file():
            return None
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
