"""Load (prompt, response) samples from the formats users keep their data in.

Formats, detected from a record's fields: Alpaca (``instruction``, ``input``, ``output``),
prompt/completion (TRL; plain or conversational), chat ``messages`` (the last assistant turn
is the response, earlier turns the prompt), and any table with a column mapping
(``fields={"prompt": "question", "response": "answer"}``, or in a source string
``data.csv?prompt=question&response=answer[&input=context]``). Files: .json, .jsonl, .csv,
.parquet. Sources: a path, ``paper:<task>/<style>[@irrelevant]``, ``builtin:arith/<style>``,
``hf:<name>[:<config>][@<split>]``. Any source may end in ``#first=N``: each sample is trained on exactly the
first N tokens of its response (a shorter one is skipped with its reason), so that conditions compare at one
token budget.

Every sample carries a stable content-hash ``sample_id``, its ``source_index`` and ``meta``: the
record's other fields (every field but the text fields of its format), numbers written as strings
parsed as numbers, anything else kept as text; a run writes them to samples.parquet as
``meta.<field>`` columns, which cannot collide with layergrad's own. A record that cannot be used
becomes a sample with ``problem`` set: ``load_samples(strict=True)`` raises on it, a run records
it as a skip with that reason.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from layergrad.errors import InputError

FORMATS = ("alpaca", "prompt-completion", "prompt-response", "messages", "columns")


@dataclass(frozen=True)
class Sample:
    """One training example: prompt text (plus earlier chat turns) and the response trained on."""

    prompt: str
    response: str
    source_index: int = 0
    context: tuple[tuple[str, str], ...] = ()  # earlier (role, content) turns, system included
    problem: str | None = None  # why it cannot be computed; None when fine
    sample_id: str = field(default="")
    meta: tuple[tuple[str, object], ...] = ()  # the record's other fields: (name, number or text)
    join: str = " "  # the ODA recipe's text between prompt and response (its NuclearNormScorer's; '\n': its
    # EffectiveRankScorer's)
    first_tokens: int | None = None  # train on exactly the response's first N tokens (a source's '#first=N')

    def __post_init__(self):
        if not self.sample_id:
            object.__setattr__(self, "sample_id", content_id(self.context, self.prompt, self.response))


def content_id(context, prompt, response) -> str:
    """16 hex digits of SHA-256 over the sample's content: equal content, equal id."""
    payload = json.dumps([list(map(list, context)), prompt, response], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# ----------------------------------------------------------------------------- records


TEXT_FIELDS = {"alpaca": ("instruction", "input", "output"), "prompt-completion": ("prompt", "completion"),
               "prompt-response": ("prompt", "response"), "messages": ("messages",)}
PROMPT_RESPONSE = {"prompt": "prompt", "response": "response"}
META_PREFIX = "meta."
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def sample_from_record(record, index: int, fields: dict | None = None) -> Sample:
    """One raw record -> Sample (with ``problem`` set when it is unusable), its other fields as ``meta``."""
    sample = _sample_of(record, index, fields)
    if not isinstance(record, dict):
        return sample
    text = set(fields.values()) if fields else set(TEXT_FIELDS[record_format(record)])
    return replace(sample, meta=tuple((str(k), meta_value(v)) for k, v in record.items() if k not in text))


def record_format(record: dict) -> str:
    if "messages" in record:
        return "messages"
    if "completion" in record and "prompt" in record:
        return "prompt-completion"
    if "response" in record and "prompt" in record:
        return "prompt-response"
    return "alpaca"


def meta_value(value):
    """A number (also one written as a string, e.g. "-2.83") as float, anything else as text (None stays)."""
    if value is None or isinstance(value, bool):
        return value if value is None else str(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return float(value)
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def meta_columns(sample: Sample) -> dict:
    """{'meta.<field>': value} of a sample."""
    return {META_PREFIX + k: v for k, v in sample.meta}


def _sample_of(record, index: int, fields: dict | None) -> Sample:
    if not isinstance(record, dict):
        return _problem(index, f"record {index} is a {type(record).__name__}, not an object", record)
    try:
        if fields:
            return _from_columns(record, index, fields)
        if "messages" in record:
            return _from_messages(record["messages"], index)
        if "completion" in record and "prompt" in record:
            return _from_prompt_completion(record, index)
        if "response" in record and "prompt" in record:
            return _from_columns(record, index, PROMPT_RESPONSE)
        if "instruction" in record or "output" in record:
            return _from_alpaca(record, index)
    except (TypeError, KeyError, AttributeError) as exc:
        return _problem(index, f"record {index} is malformed ({exc})", record)
    keys = ", ".join(sorted(map(str, record))[:8])
    return _problem(index, f"record {index} has no known fields (found: {keys}); expected "
                    "instruction/output, prompt/completion, prompt/response, messages, or name yours after the source: "
                    "'file.jsonl?prompt=<field>&response=<field>'", record)


def _from_alpaca(record: dict, index: int) -> Sample:
    missing = [k for k in ("instruction", "output") if not isinstance(record.get(k), str)]
    if missing:
        return _problem(index, f"record {index} lacks text field(s) {', '.join(missing)}", record)
    prompt = record["instruction"]
    if record.get("input"):
        prompt = prompt + "\n" + str(record["input"])
    return _checked(Sample(prompt, record["output"], index))


def _from_prompt_completion(record: dict, index: int) -> Sample:
    prompt, completion = record["prompt"], record["completion"]
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        completion = "".join(m["content"] for m in completion)
    if isinstance(prompt, list):
        turns = [(m["role"], m["content"]) for m in prompt]
        if not turns or turns[-1][0] != "user":
            return _problem(index, f"record {index}: the prompt's last turn must be the user's", record)
        return _checked(Sample(turns[-1][1], completion, index, tuple(turns[:-1])))
    if not isinstance(prompt, str) or not isinstance(completion, str):
        return _problem(index, f"record {index}: prompt and completion must be text", record)
    return _checked(Sample(prompt, completion, index))


def _from_messages(messages, index: int) -> Sample:
    turns = [(m["role"], m["content"]) for m in messages]
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None or last == 0 or turns[last - 1][0] != "user":
        return _problem(index, f"record {index}: messages need a user turn followed by an assistant turn",
                        messages)
    return _checked(Sample(turns[last - 1][1], turns[last][1], index, tuple(turns[: last - 1])))


def _from_columns(record: dict, index: int, fields: dict) -> Sample:
    missing = [fields[k] for k in ("prompt", "response") if fields.get(k) not in record]
    if missing:
        return _problem(index, f"record {index} lacks column(s) {', '.join(map(str, missing))}", record)
    prompt = str(record[fields["prompt"]])
    if fields.get("input") and record.get(fields["input"]):
        prompt += "\n" + str(record[fields["input"]])
    return _checked(Sample(prompt, str(record[fields["response"]]), index))


def _checked(sample: Sample) -> Sample:
    if not sample.response.strip():
        return replace(sample, problem=f"record {sample.source_index} has an empty response")
    return sample


def reason_kind(reason: str) -> str:
    """A skip reason without record numbers, so that reasons can be counted."""
    return re.sub(r"record \d+", "record", re.sub(r"; it has \d+[^)]*", "", reason))


def _problem(index: int, reason: str, record) -> Sample:
    raw = json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
    return Sample("", raw, index, (), reason)


# ----------------------------------------------------------------------------- files


def read_records(path: Path) -> list:
    """Raw records of a .json/.jsonl/.csv/.parquet file; unreadable content is an InputError."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(path)
        return frame.to_dict(orient="records")
    text = _read_text(path)
    if suffix == ".jsonl":
        return [parse_json_line(line, n, path) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON list of records")
        return data
    raise InputError(f"{path}: unknown data format '{suffix}'; use .json, .jsonl, .csv or .parquet")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); re-encode it as UTF-8") from None


def parse_json_line(line: str, number: int, path: Path):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Subsample:
    """Which of a source's records a run takes: every one (``n`` None), the first ``n`` (``head``), or ``n`` drawn
    at random with ``seed`` and kept in source order. The draw depends only on the source's size and the seed, so
    conditions of paired records (the same prompts in the same order) keep the same positions and stay paired."""

    n: int | None = None
    head: bool = False
    seed: int = 0

    def positions(self, total: int) -> list[int]:
        """The positions taken of ``total`` records, ascending."""
        if self.n is None or self.n >= total:
            return list(range(total))
        if self.head:
            return list(range(self.n))
        return sorted(random.Random(self.seed).sample(range(total), self.n))

    def take(self, items: list) -> list:
        return [items[i] for i in self.positions(len(items))]

    def describe(self) -> str:
        if self.n is None:
            return "every record"
        return f"the first {self.n}" if self.head else f"a random {self.n} (seed {self.seed}, in source order)"


def load_samples(source, limit: int | None = None, *, head: bool = False, seed: int = 0, fields: dict | None = None,
                 strict: bool = True, paper_data: str | None = None) -> list[Sample]:
    """Samples of a data source, in source order.

    Args:
        source: A ``.json``/``.jsonl``/``.csv``/``.parquet`` file (Alpaca, prompt-completion or chat records;
            other column names mapped as ``'data.csv?prompt=question&response=answer'``), ``paper:<task>/<style>
            [@irrelevant]``, ``builtin:arith/<style>[@irrelevant][?n=N]``, ``hf:<dataset>[:config][@split]``, or a
            list of records; any of them with ``#first=N`` (the first N response tokens of each sample).
        limit: Only ``limit`` samples: a seeded random subsample, kept in source order (``Subsample``).
        head: Take the first ``limit`` samples instead.
        seed: The subsample's seed.
        fields: The column mapping, as a dict (``{"prompt": ..., "response": ...}``).
        strict: Raise on an unusable record or a duplicate; else return it with ``problem`` set.
        paper_data: A local copy of the paper's ``data/`` folder (else ``$LAYERGRAD_PAPER_DATA``, else downloaded
            once and checked).

    Returns:
        A list of ``Sample`` (prompt, response, context, content-hash id, the record's other fields). Duplicates
        keep their first occurrence.
    """
    source, first = split_first(source)
    source, query_fields = split_fields(source)
    fields = fields or query_fields
    records_or_samples = _resolve(source, paper_data)
    samples = [r if isinstance(r, Sample) else sample_from_record(r, i, fields)
               for i, r in enumerate(records_or_samples)]
    if first:
        samples = [replace(s, first_tokens=first) for s in samples]
    samples = Subsample(limit, head, seed).take(mark_duplicates(samples))
    if strict:
        bad = next((s for s in samples if s.problem), None)
        if bad is not None:
            raise InputError(f"{source}: {bad.problem}")
    if not samples:
        raise InputError(f"{source}: no samples found")
    return samples


FIRST = re.compile(r"#first=(?P<n>[^#]*)$")


def split_first(source):
    """'data.json#first=256' -> ('data.json', 256); a source without the suffix -> (source, None)."""
    text = str(source) if isinstance(source, (str, Path)) else ""
    match = FIRST.search(text)
    if not match:
        return source, None
    if not match["n"].isdigit() or int(match["n"]) < 1:
        raise InputError(f"{text}: '#first=' needs a whole number of tokens of at least 1, e.g. #first=256")
    return text[:match.start()], int(match["n"])


def split_fields(source):
    """'file.csv?prompt=q&response=a' -> ('file.csv', {'prompt': 'q', 'response': 'a'})."""
    text = str(source) if isinstance(source, (str, Path)) else ""
    if not text or text.startswith(("builtin:", "paper:", "hf:")) or "?" not in text or Path(text).exists():
        return source, None
    path, _, query = text.rpartition("?")
    fields = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or key not in ("prompt", "response", "input"):
            raise InputError(f"{text}: column mapping must look like ?prompt=COLUMN&response=COLUMN[&input=COLUMN]")
        fields[key] = value
    if not {"prompt", "response"} <= set(fields):
        raise InputError(f"{text}: the column mapping needs both prompt= and response=")
    return path, fields


def mark_duplicates(samples: list[Sample]) -> list[Sample]:
    """Set ``problem`` on every repeat of an earlier sample's content."""
    first: dict[str, int] = {}
    out = []
    for s in samples:
        if s.problem is None and s.sample_id in first:
            s = replace(s, problem=f"record {s.source_index} duplicates record {first[s.sample_id]}",
                        sample_id=f"{s.sample_id}-dup{s.source_index}")
        elif s.problem is None:
            first[s.sample_id] = s.source_index
        out.append(s)
    return out


def _resolve(source, paper_data):
    if isinstance(source, (list, tuple)):
        return list(source)
    text = str(source)
    if text.startswith("paper:"):
        from layergrad.data.paper import paper_records

        return paper_records(text[len("paper:"):], paper_data)
    if text.startswith("builtin:"):
        from layergrad.data.arith import builtin_samples

        return builtin_samples(text[len("builtin:"):])
    if text.startswith("hf:"):
        return _hub_records(text[3:])
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"data file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass a .json, .jsonl, .csv or .parquet file")
    return read_records(path)


def _hub_records(spec: str) -> list:
    """'name[:config][@split]' from the Hugging Face hub via ``datasets`` (needs network)."""
    return [dict(r) for r in hub_dataset(spec)]


def hub_dataset(spec: str, streaming: bool = False):
    """The ``datasets`` split named by 'name[:config][@split]' (default split: train); one-line errors."""
    try:
        import datasets
    except ImportError:
        raise InputError("hub datasets need the 'datasets' package: pip install 'layergrad[hub]'") from None
    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        return datasets.load_dataset(name, config or None, split=split or "train", streaming=streaming)
    except Exception as exc:  # offline, unknown name, ...: one line for the user
        raise InputError(f"cannot load hub dataset '{spec}': {str(exc).splitlines()[0]}") from None
