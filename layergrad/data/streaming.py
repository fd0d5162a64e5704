"""Records streamed in and out. In: a data source read in windows of records, never whole: JSONL line by
line, Parquet by row groups, CSV by chunks, ``hf:`` datasets streamed; a JSON list (which cannot be
streamed) and ``paper:``/``builtin:`` sources are read whole. Record i of a window starting at ``start`` is
record ``start + i`` of the source, as ``read_records`` numbers them (the blank lines of a JSONL file do not
count). Out: records appended window by window to one Parquet file, or written whole in a file's format,
atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from layergrad.data.samples import hub_dataset, parse_json_line, read_records, split_fields
from layergrad.errors import InputError

FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class RecordSource:
    """A source string (a file, ``?prompt=..&response=..`` mapped columns, ``paper:``, ``builtin:``, ``hf:``)."""

    source: str
    paper_data: str | None = None

    @property
    def path(self) -> Path | None:
        path, _ = split_fields(self.source)
        file = Path(str(path)).expanduser()
        return file if file.suffix.lower() in FILE_SUFFIXES or file.is_file() else None

    @property
    def fields(self) -> dict | None:
        return split_fields(self.source)[1]

    @property
    def suffix(self) -> str:
        """The format selections are written in: the input file's, else JSONL."""
        return self.path.suffix.lower() if self.path is not None else ".jsonl"

    def check(self) -> None:
        """A one-line InputError for a file that is missing, of an unknown format, holds no record or (JSONL) a line
        that is not JSON — before any model work (a JSONL file is read once for it; the others by their metadata
        or first rows)."""
        if self.path is None:
            return
        if not self.path.is_file():
            raise InputError(f"data file not found: {self.path}")
        if self.path.suffix.lower() not in FILE_SUFFIXES:
            raise InputError(f"{self.path}: unknown data format '{self.path.suffix}'; use .json, .jsonl, .csv or .parquet")
        if not self.has_records():
            raise InputError(f"{self.path}: no records to score (the file is empty)")

    def has_records(self) -> bool:
        """Whether the file holds a record (every line of a JSONL file parsed on the way: a broken one is an error)."""
        from layergrad.data.samples import parse_json_line

        suffix = self.path.suffix.lower()
        if suffix == ".jsonl":
            found = False
            with open(self.path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        parse_json_line(line, number, self.path)
                        found = True
            return found
        if suffix in (".parquet", ".pq"):
            return (self.count() or 0) > 0
        return next(iter(self.records()), None) is not None

    def count(self) -> int | None:
        """How many records (cheap where the format tells; None where it would mean reading it all)."""
        path = self.path
        if path is None:
            return None
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            with open(path, "rb") as fh:
                return sum(1 for line in fh if line.strip())
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        return None

    def windows(self, size: int) -> Iterator[tuple[int, list]]:
        """(start, records) of consecutive windows of at most ``size`` records."""
        start, window = 0, []
        for record in self.records():
            window.append(record if isinstance(record, dict) else {"record": record})
            if len(window) == size:
                yield start, window
                start, window = start + size, []
        if window:
            yield start, window

    def picked(self, size: int, take) -> Iterator[tuple[int, int, list[tuple[int, dict]]]]:
        """(start, stop, [(index, record)]) of each window of ``size`` records, with the records a
        ``data.samples.Subsample`` takes (a random one counts the records first, reading them once where the format
        does not tell)."""
        wanted = None
        if take.n is not None:
            total = take.n if take.head else self.count() or sum(len(records) for _, records in self.windows(size))
            wanted = take.positions(total)
        last, keep = (wanted[-1] if wanted else -1), set(wanted or ())
        for start, records in self.windows(size):
            if wanted is not None and start > last:
                return
            pairs = [(start + i, r) for i, r in enumerate(records) if wanted is None or start + i in keep]
            yield start, start + len(records), pairs

    def records(self) -> Iterator:
        path = self.path
        if path is None:
            yield from self._other_records()
            return
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        yield parse_json_line(line, number, path)
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        elif suffix == ".csv":
            import pandas as pd

            for chunk in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=1024):
                yield from chunk.to_dict(orient="records")
        else:
            yield from read_records(path)

    def _other_records(self) -> Iterator:
        text = self.source
        if text.startswith("hf:"):
            yield from hub_stream(text[3:])
            return
        from layergrad.data.samples import load_samples

        for s in load_samples(text, strict=False, paper_data=self.paper_data):
            yield {"instruction": s.prompt, "output": s.response}


def hub_stream(spec: str) -> Iterator[dict]:
    """'name[:config][@split]' from the Hugging Face hub, streamed (needs network and ``datasets``)."""
    for row in hub_dataset(spec, streaming=True):
        yield dict(row)


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file, flushed to disk and renamed (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ParquetAppender:
    """Rows appended window by window to one Parquet file (columns: the first window's)."""

    def __init__(self, path: Path, typed=lambda column: False):
        self.path, self.tmp, self.typed = path, path.with_name(path.name + ".tmp"), typed
        self.writer = self.schema = None

    def append(self, rows: list[dict]) -> None:
        import pyarrow.parquet as pq

        if not rows:
            return
        table = as_table(rows, self.schema, self.typed)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.tmp.replace(self.path)


def as_table(rows: list[dict], schema=None, typed=lambda column: False):
    """A pyarrow table of records in ``schema`` when given; nested or mixed-type fields become JSON text (but
    the ``typed`` columns) and a later window's values that do not fit the first window's types, text or None."""
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass
    if schema is None:
        return pa.Table.from_pylist([{k: v if typed(k) else as_text(v) for k, v in r.items()}
                                     for r in rows])
    types = {f.name: f.type for f in schema}
    return pa.Table.from_pylist([{k: fitted(v, types.get(k)) for k, v in r.items() if k in types} for r in rows],
                                schema=schema)


def as_text(value):
    return value if value is None or isinstance(value, str) else json.dumps(value, default=str)


def fitted(value, kind):
    """A value in a Parquet column's type: text as text, numbers as numbers, else None."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return as_text(value)
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        try:
            number = float(value)
            return int(number) if pa.types.is_integer(kind) and number == int(number) else number
        except (TypeError, ValueError, OverflowError):
            return None
    return value if isinstance(value, (bool, int, float, str)) else None


def write_records(path: Path, records: list[dict], like: str | None = None) -> Path:
    """Records as ``path``'s format (.json list, .jsonl, .csv, .parquet), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = (like or path.suffix).lower()
    if suffix in (".jsonl", ".json"):
        lines = [json_line(r) for r in records]
        text = "\n".join(lines) + "\n" if suffix == ".jsonl" else "[\n" + ",\n".join(lines) + "\n]\n"
        write_atomic(path, text if records or suffix == ".jsonl" else "[]\n")
        return path
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        import pandas as pd

        pd.DataFrame(records).to_csv(tmp, index=False)
    else:
        import pyarrow.parquet as pq

        pq.write_table(as_table(records), tmp)
    tmp.replace(path)
    return path
