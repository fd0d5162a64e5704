"""Build the paper's data conditions from a dataset: irrelevant responses and response styles.

Irrelevant responses (correct vs irrelevant comparison) with a guarantee the original lacks:
no irrelevant response equals, or ends with the same final answer as, its original.
``answer`` mode swaps in another sample's response whose final answer differs;
``sentences`` mode (the paper's construction) mixes sentences of other responses to about
the original's length and ends with a final answer that differs.
"""

from __future__ import annotations

import random
import re

from layergrad.errors import InputError

_FINAL = re.compile(r"final answer is[:\s]*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def final_answer(response: str) -> str:
    """Normalised final answer: 'The final answer is X', the last \\boxed{X}, a short response
    itself, else the last number; lower case, without surrounding punctuation, $ and commas."""
    found = _FINAL.findall(response) or _BOXED.findall(response)
    if found:
        answer = found[-1]
    elif len(response.split()) <= 4:
        answer = response
    else:
        numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", response)
        answer = numbers[-1] if numbers else response.strip().splitlines()[-1]
    answer = answer.strip().lower().replace(",", "").replace("$", "").replace("*", "")
    return answer.strip(" .()[]{}:").strip()


def make_irrelevant(records: list[dict], *, mode: str = "answer", seed: int = 0,
                    field: str = "output") -> list[dict]:
    """Copies of ``records`` whose ``field`` is an irrelevant response (see module doc)."""
    if mode not in ("answer", "sentences"):
        raise InputError(f"unknown irrelevant mode '{mode}'; use answer or sentences")
    rng = random.Random(seed)
    answers = [final_answer(r[field]) for r in records]
    if len(set(answers)) < 2:
        raise InputError("all samples share one final answer: no irrelevant response can differ from them")
    out = []
    for i, record in enumerate(records):
        others = [j for j in range(len(records)) if answers[j] != answers[i] and records[j][field] != record[field]]
        if not others:
            raise InputError(f"record {i}: no other sample has a different final answer")
        if mode == "answer":
            response = records[rng.choice(others)][field]
        else:
            response = mixed_sentences(records, i, others, answers, rng, field)
        out.append({**record, field: response})
    return out


def mixed_sentences(records, i: int, others: list[int], answers: list[str], rng, field: str) -> str:
    """Sentences of other responses up to the original's word count, then a differing answer."""
    target = len(records[i][field].split())
    pieces, words = [], 0
    while words < target:
        sentences = [s for s in _SENTENCE.split(records[rng.choice(others)][field])
                     if s.strip() and not _FINAL.search(s)]
        if sentences:
            pick = rng.choice(sentences).strip()
            pieces.append(pick)
            words += len(pick.split())
    wrong = records[rng.choice(others)][field]
    return " ".join(pieces) + f"\nThe final answer is {final_answer_text(wrong, answers, i)}"


def final_answer_text(response: str, answers: list[str], i: int) -> str:
    answer = final_answer(response)
    return answer if answer != answers[i] else next(a for a in answers if a != answers[i])


def make_styles(records: list[dict], *, question: str = "question", rationale: str = "rationale",
                answer: str = "answer", detailed: str | None = None) -> dict[str, list[dict]]:
    """None / Simplified (/ Detailed) CoT Alpaca records from question, rationale and answer fields.

    GSM8K's ``answer`` ("rationale #### 42", calculator marks <<...>>) is split when the
    rationale field is missing.
    """
    styles = {"none": [], "simplified": []}
    if detailed:
        styles["detailed"] = []
    for n, rec in enumerate(records):
        if question not in rec or answer not in rec:
            raise InputError(f"record {n} lacks '{question}' or '{answer}'; map the fields with --question/--answer")
        steps, final = split_rationale(rec, rationale, answer)
        base = {"instruction": rec[question], "input": ""}
        styles["none"].append({**base, "output": final})
        styles["simplified"].append({**base, "output": f"{steps}\nThe final answer is {final}"})
        if detailed:
            if not rec.get(detailed):
                raise InputError(f"record {n} lacks the detailed-rationale field '{detailed}'")
            styles["detailed"].append({**base, "output": rec[detailed]})
    return styles


def split_rationale(rec: dict, rationale: str, answer: str) -> tuple[str, str]:
    text = str(rec[answer])
    if rationale in rec:
        return str(rec[rationale]).strip(), text.strip()
    if "####" not in text:
        raise InputError(f"no '{rationale}' field and '{answer}' has no '#### answer' line")
    steps, final = text.rsplit("####", 1)
    return re.sub(r"<<[^>]*>>", "", steps).strip(), final.strip()
