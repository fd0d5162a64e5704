"""What a condition *is*, from its source: attributes such as task, style, variant and family (or metric,
pool and quality), so that analysis selects conditions by what they are, never by what they are named.

    paper:gsm8k/detailed@irrelevant   -> task gsm8k, style detailed, variant irrelevant, family reasoning, group cot
    paper:wiki/popular-100            -> task wiki, style popular-100, variant correct, family wiki, group wiki
    builtin:arith/none                -> style none, variant correct, family reasoning
    .../instag/mag_10k_highest_200.json -> task instag/mag, metric instag, pool mag, quality high, family quality
    .../reasoning/s1_R1.json          -> task reasoning, trace s1-r1, family traces
    ...#first=256                     -> the same, and first 256 (the response's first 256 tokens)

Any other source has no attributes of its own; a study file gives them (studies/).
"""

from __future__ import annotations

import re
from pathlib import PurePath

from layergrad.data.paper import COT_TASKS, MATH_TASKS, WIKI
from layergrad.data.samples import split_first

QUALITY_FILE = re.compile(r"^(?P<pool>[A-Za-z0-9]+)_10k_(?P<side>highest|lowest)_200\.json$")
TRACE_FILES = {"gsm8k_R1.json": "gsm8k-r1", "s1_R1.json": "s1-r1"}


def attributes_of(source: str) -> dict[str, str]:
    """The attributes a source implies (empty when it implies none); ``#first=N`` adds ``first: N``."""
    text, first = split_first(str(source))
    implied = implied_attributes(str(text))
    return {**implied, "first": str(first)} if first else implied


def implied_attributes(text: str) -> dict[str, str]:
    if text.startswith("paper:"):
        return paper_attributes(text[len("paper:"):])
    if text.startswith("builtin:arith/"):
        style, _, variant = text[len("builtin:arith/"):].split("?")[0].partition("@")
        return {"style": style, "variant": variant or "correct", "family": "reasoning"}
    return followup_attributes(text)


def paper_attributes(name: str) -> dict[str, str]:
    base, _, variant = name.partition("@")
    task, _, style = base.partition("/")
    group = "cot" if task in COT_TASKS else "math" if task in MATH_TASKS else "wiki" if task == "wiki" else ""
    if not group or not style:
        return {}
    return {"task": task, "style": style, "variant": variant or "correct",
            "family": "wiki" if style in WIKI else "reasoning", "group": group}


def followup_attributes(path: str) -> dict[str, str]:
    """A file of the follow-up's data layout, recognised by its last two path components."""
    parts = PurePath(path.split("?")[0]).parts
    if len(parts) < 2:
        return {}
    folder, file = parts[-2], parts[-1]
    if folder == "reasoning" and file in TRACE_FILES:
        return {"task": "reasoning", "trace": TRACE_FILES[file], "family": "traces"}
    match = QUALITY_FILE.match(file)
    if match:
        return {"task": f"{folder}/{match['pool']}", "metric": folder, "pool": match["pool"],
                "quality": "high" if match["side"] == "highest" else "low", "family": "quality"}
    return {}
