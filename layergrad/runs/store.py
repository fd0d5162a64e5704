"""The run directory: durable chunks, resume, config fingerprint, final tables.

Layout::

    RUN/config.yaml            resolved configuration (replay with --config)
    RUN/run.json               manifest: model identity, versions, timings, throughput
    RUN/chunks/NNNNN.stats.parquet, NNNNN.samples.parquet   one pair per batch
    RUN/shards/rankR/NNNNN.*.parquet                        the same, per rank under torchrun
    RUN/stats.parquet, RUN/samples.parquet                   merged tables

A chunk is written to a temporary name, flushed to disk and renamed, stats first; its
samples file is the commit mark. A chunk without it (killed in between) is discarded on
resume, so a ``kill -9`` loses at most the batch in flight and never duplicates a row.
Finished chunks are never rewritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import yaml

from layergrad.data.streaming import write_atomic
from layergrad.errors import ConfigMismatchError, InputError
from layergrad.runs.config import RunConfig


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, out: str | Path, *, rank: int | None = None):
        self.root = Path(out)
        self.chunks = self.root / "chunks" if rank is None else self.root / "shards" / f"rank{rank}"
        self._next_index: int | None = None  # found once per run, then counted up

    def chunk_dirs(self) -> list[Path]:
        """Every folder that holds chunks: the single-process one and each rank's shard."""
        shards = sorted((self.root / "shards").glob("rank*")) if (self.root / "shards").exists() else []
        return [self.root / "chunks"] + shards

    # -- configuration -------------------------------------------------------------------
    def prepare(self, config: RunConfig, *, write: bool = True) -> None:
        """Create the directory, or check that it holds the same configuration (``write=False``:
        only check, as the other ranks of a torchrun job do)."""
        if write:
            try:
                self.chunks.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create run directory {self.root}: {exc.strerror}; choose another --out") from None
            if not os.access(self.root, os.W_OK):
                raise InputError(f"run directory {self.root} is not writable; choose another --out")
        saved = None if config.overwrite else self.saved_config()
        diff = saved is not None and first_difference(saved.result_fingerprint(), config.result_fingerprint())
        if diff:
            raise ConfigMismatchError(f"{self.root} holds a run with a different config ({diff}); "
                                      "use --overwrite to replace it or a new --out")
        if write:
            if config.overwrite:
                self.clear()
            write_atomic(self.root / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    def saved_config(self) -> RunConfig | None:
        path = self.root / "config.yaml"
        if not path.exists():
            return None
        try:
            return RunConfig.from_dict(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, InputError, TypeError):
            raise ConfigMismatchError(f"{path} is unreadable; use --overwrite or a new --out") from None

    def clear(self) -> None:
        chunks = [p for d in self.chunk_dirs() for p in d.glob("*.parquet")]
        for path in chunks + [self.root / n for n in ("stats.parquet", "samples.parquet")]:
            path.unlink(missing_ok=True)

    # -- chunks ----------------------------------------------------------------------------
    def committed(self, folder: Path | None = None) -> list[int]:
        """Indices of complete chunks in ``folder`` (default: this writer's); half-written ones
        are removed (only from this writer's folder: another rank may be writing its own)."""
        folder = folder or self.chunks
        done = []
        for path in folder.glob("*.stats.parquet"):
            index = int(path.name.split(".")[0])
            if (folder / f"{index:05d}.samples.parquet").exists():
                done.append(index)
            elif folder == self.chunks:
                path.unlink()
        if folder == self.chunks:
            for tmp in folder.glob("*.tmp"):
                tmp.unlink()
        return sorted(done)

    def done_ids(self) -> set[tuple[str, str]]:
        """(condition, sample_id) of every sample already recorded."""
        frame = self.read_table("samples", columns=["condition", "sample_id"])
        return set(zip(frame["condition"], frame["sample_id"]))

    def write_chunk(self, stats: pd.DataFrame, samples: pd.DataFrame) -> int:
        if self._next_index is None:
            self.chunks.mkdir(parents=True, exist_ok=True)
            self._next_index = max(self.committed(), default=-1) + 1
        index, self._next_index = self._next_index, self._next_index + 1
        write_parquet_atomic(stats, self.chunks / f"{index:05d}.stats.parquet")
        write_parquet_atomic(samples, self.chunks / f"{index:05d}.samples.parquet")
        return index

    def committed_chunks(self) -> list[tuple[Path, int]]:
        """(folder, index) of every committed chunk of every writer (the single process's, each rank's)."""
        return [(d, i) for d in self.chunk_dirs() if d.exists() for i in self.committed(d)]

    @staticmethod
    def read_chunk(chunk: tuple[Path, int], name: str, columns=None) -> pd.DataFrame:
        """One committed chunk's 'stats' or 'samples' table."""
        folder, index = chunk
        return pd.read_parquet(folder / f"{index:05d}.{name}.parquet", columns=columns)

    def manifest(self) -> dict:
        """run.json, or {} before the run has finished once."""
        path = self.root / "run.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def read_table(self, name: str, columns=None) -> pd.DataFrame:
        """All committed chunks of 'stats' or 'samples' (every shard), concatenated."""
        frames = [self.read_chunk(chunk, name, columns) for chunk in self.committed_chunks()]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=columns or [])
        return pd.concat(frames, ignore_index=True)

    def finalize(self, stats_sorter, samples_sorter) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Merge the chunks into stats.parquet and samples.parquet (sorted, de-duplicated)."""
        stats = stats_sorter(self.read_table("stats").drop_duplicates(["condition", "sample_id", "param"]))
        samples = samples_sorter(self.read_table("samples").drop_duplicates(["condition", "sample_id"]))
        write_parquet_atomic(stats, self.root / "stats.parquet")
        write_parquet_atomic(samples, self.root / "samples.parquet")
        return stats, samples

    def write_manifest(self, manifest: dict) -> None:
        write_atomic(self.root / "run.json", json.dumps(manifest, indent=2, default=str))


def first_difference(a: dict, b: dict) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}: {a.get(key)!r} there, {b.get(key)!r} now"
    return ""


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_run(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(stats, samples, manifest) of a finished run directory."""
    root = Path(path)
    if not (root / "stats.parquet").exists():
        raise InputError(f"{root} is not a finished layergrad run (no stats.parquet)")
    manifest = json.loads((root / "run.json").read_text()) if (root / "run.json").exists() else {}
    return pd.read_parquet(root / "stats.parquet"), pd.read_parquet(root / "samples.parquet"), manifest
