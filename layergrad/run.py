"""The facade: ``run(config)`` loads the model once, computes every condition into a run
directory, resumes what a previous attempt left, and writes the manifest."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import __version__
from .config import RunConfig
from .data import load_samples
from .engine import ComputeOptions, iter_records, samples_frame, stats_frame
from .errors import InputError
from .models import load_model
from .progress import Progress
from .store import RunStore


def run(config: RunConfig, *, model=None, log=print) -> Path:
    """Compute ``config`` into ``config.out`` and return that directory."""
    if not config.data:
        raise InputError("no data given; pass --data NAME=SOURCE (e.g. --data none=paper:gsm8k/none)")
    conditions = {name: load_samples(src, config.limit, strict=False, paper_data=config.paper_data)
                  for name, src in config.data.items()}
    store = RunStore(config.out)
    store.prepare(config)
    done = store.done_ids()
    started = datetime.now(timezone.utc)
    m = model or load_model(config.model, dtype=config.dtype, device=config.device, chat=config.chat,
                            trust_remote_code=config.trust_remote_code, log=log)
    todo = sum(1 for name, ss in conditions.items() for s in ss if (name, s.sample_id) not in done)
    progress = Progress(total=todo, quiet=config.quiet, log=log)
    clock = time.perf_counter()
    for records in iter_records(m, conditions, compute_options(config), skip_ids=done):
        store.write_chunk(pd.DataFrame(records.stats), pd.DataFrame(records.samples))
        progress.update(records)
    progress.close()
    stats, samples = store.finalize(stats_frame, samples_frame)
    elapsed = time.perf_counter() - clock
    store.write_manifest(manifest(config, m, samples, started, elapsed, progress.tokens))
    return store.root


def compute_options(config: RunConfig) -> ComputeOptions:
    return ComputeOptions(modules=config.modules, paper=config.paper, batch_size=config.batch_size,
                          batch_tokens=config.batch_tokens, max_length=config.max_length, route=config.route,
                          spectrum=config.spectrum, append_eos=config.append_eos,
                          system_prompt=config.system_prompt)


def manifest(config: RunConfig, m, samples: pd.DataFrame, started, elapsed: float, tokens: int) -> dict:
    import torch
    import transformers

    counts = samples.groupby(["condition", "status"]).size().unstack(fill_value=0)
    return {
        "layergrad_version": __version__, "git_commit": git_commit(),
        "config": config.to_dict(), "model": m.identity,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "pandas": pd.__version__,
                     "platform": platform.platform()},
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "this_session": {"seconds": round(elapsed, 2), "tokens": tokens,
                         "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None},
        "samples": {c: {k: int(v) for k, v in row.items()} for c, row in counts.iterrows()},
    }


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
