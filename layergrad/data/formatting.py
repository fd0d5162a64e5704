"""Render a sample as model text, tokenize it and locate its response tokens.

Default (docs/guide/how-it-works.md, "Where the default differs from the original"): instruct models
get their chat template (optional system prompt), base models ``prompt + "\\n" + response``. The rendered prompt is tokenized on its
own and must be a token prefix of the full text's tokens (no text search); when a BPE merge
crosses the boundary the two parts are tokenized separately and joined (``boundary='split'``).
Rendered templates are tokenized without extra special tokens (no double BOS). The
end-of-turn token (or EOS for base models) is appended as a target, as SFT trainers do.

Paper mode reproduces the original script: system prompt "You are a helpful assistant."
(none for model names containing 'gemma'), ``encode()`` with default special tokens,
boundary = len(encode(text[:text.rfind(response)])), no EOS, max length 1024.

The ODA recipe reproduces OpenDataArena's NuclearNormScorer / EffectiveRankScorer: no template,
text = prompt.strip() + " " + response.strip() tokenized with default special tokens and truncated,
the first len(tokenize(prompt.strip() + " ")) tokens masked (its text-prefix quirk kept), no EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

from layergrad.data.samples import Sample

PAPER_SYSTEM_PROMPT = "You are a helpful assistant."
PAPER_MAX_LENGTH = 1024
DEFAULT_MAX_LENGTH = 2048
_SENTINEL = "\x00LAYERGRAD\x00"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one sample; the loss targets are positions n_prompt..len-1 (≥ 1)."""

    input_ids: tuple[int, ...]
    n_prompt: int
    truncated: bool
    boundary: str  # 'prefix' | 'split' | 'paper' | 'oda'

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_response(self) -> int:
        return max(0, self.n_tokens - max(self.n_prompt, 1))


def first_tokens(encoded: Encoded, n: int | None) -> Encoded:
    """The sample cut after its response's first ``n`` tokens (unchanged when it has no more; None: no cut)."""
    if n is None or encoded.n_response <= n:
        return encoded
    end = max(encoded.n_prompt, 1) + n
    return Encoded(encoded.input_ids[:end], encoded.n_prompt, encoded.truncated, encoded.boundary)


def too_short(sample: Sample, encoded: Encoded) -> str:
    """Why a sample of a '#first=N' source cannot be trained on N response tokens ('' when it can)."""
    n = sample.first_tokens
    if n is None or encoded.n_response >= n:
        return ""
    cut = " after --max-length" if encoded.truncated else ""
    return (f"shorter than the first {n} response tokens its condition trains on (#first={n}; it has "
            f"{encoded.n_response}{cut})")


class Formatter:
    """Turns samples into ``Encoded`` for one tokenizer and one set of formatting choices."""

    def __init__(self, tokenizer, *, chat: bool, system_prompt: str | None = None,
                 append_eos: bool = True, max_length: int | None = None,
                 paper: bool = False, model_name: str = "", oda: bool = False):
        self.tok, self.chat, self.paper, self.oda = tokenizer, chat, paper, oda
        self.model_name = model_name
        self.system_prompt = PAPER_SYSTEM_PROMPT if paper and system_prompt is None else system_prompt
        self.append_eos = append_eos and not paper
        default_len = PAPER_MAX_LENGTH if paper else DEFAULT_MAX_LENGTH
        self.max_length = max_length or default_len
        self._end_of_turn = self._find_end_of_turn() if self.append_eos else ""

    def encode(self, sample: Sample) -> Encoded:
        return first_tokens(self._encode(sample), sample.first_tokens)

    def _encode(self, sample: Sample) -> Encoded:
        if self.oda:
            return self._encode_oda(sample)
        prompt_text = self.render_prompt(sample)
        if self.paper:
            return self._encode_paper(prompt_text, sample.response)
        special = not self.chat  # a rendered chat template carries its own special tokens
        prompt_ids = self._ids(prompt_text, special)
        full_ids = self._ids(prompt_text + sample.response + self._end_of_turn, special)
        boundary = "prefix"
        if full_ids[: len(prompt_ids)] != prompt_ids:
            boundary = "split"
            full_ids = prompt_ids + self._ids(sample.response + self._end_of_turn, False)
        return self._truncate(full_ids, len(prompt_ids), boundary)

    def render_prompt(self, sample: Sample) -> str:
        """The text that precedes the response."""
        if not self.chat:
            turns = [content for _, content in sample.context] + [sample.prompt]
            return "\n".join(turns) + "\n"
        messages = self._messages(sample)
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _messages(self, sample: Sample) -> list[dict]:
        messages = [{"role": r, "content": c} for r, c in sample.context]
        has_system = any(m["role"] == "system" for m in messages)
        skip_system = self.paper and "gemma" in self.model_name.lower()
        if self.system_prompt and not has_system and not skip_system:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages + [{"role": "user", "content": sample.prompt}]

    def _encode_paper(self, prompt_text: str, response: str) -> Encoded:
        text = prompt_text + response
        ids = list(self.tok.encode(text))
        start = text.rfind(response)
        n_prompt = len(self.tok.encode(text[:start]))
        return self._truncate(ids, n_prompt, "paper")

    def _encode_oda(self, sample: Sample) -> Encoded:
        """ODA's scorers: instruction [+ "\n" + input] stripped, the sample's ``join`` (' ' or '\n'), the output
        stripped; the first len(tokenize(instruction + join)) tokens masked; the tokenizer's special tokens."""
        prompt = sample.prompt.strip() + sample.join
        ids = list(self.tok(prompt + sample.response.strip())["input_ids"])
        n_prompt = len(self.tok(prompt, truncation=True, max_length=self.max_length)["input_ids"])
        return self._truncate(ids, n_prompt, "oda")

    def _truncate(self, ids: list[int], n_prompt: int, boundary: str) -> Encoded:
        truncated = len(ids) > self.max_length
        return Encoded(tuple(ids[: self.max_length]), n_prompt, truncated, boundary)

    def _ids(self, text: str, special: bool) -> list[int]:
        return list(self.tok(text, add_special_tokens=special)["input_ids"])

    def turn_opening(self) -> tuple[int, ...]:
        """The tokens that open the model's turn before its response: the chat template's generation
        prompt (e.g. '<|im_start|>assistant\\n'); none for base models."""
        if not self.chat:
            return ()
        messages = [{"role": "user", "content": "hi"}]
        closed = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        opened = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        header = opened[len(closed):] if opened.startswith(closed) else ""
        return tuple(self._ids(header, False)) if header else ()

    def _find_end_of_turn(self) -> str:
        """The text a chat template puts after an assistant message (e.g. '<|im_end|>'), else EOS."""
        if self.chat:
            try:
                rendered = self.tok.apply_chat_template(
                    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}],
                    tokenize=False)
                tail = rendered.split(_SENTINEL, 1)[1].rstrip()
                if tail:
                    return tail
            except Exception:  # a template that rejects this conversation: fall back to EOS
                pass
        return self.tok.eos_token or ""
