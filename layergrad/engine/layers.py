"""Which layers: the depth segments (early / middle / late) and the ``--layers`` spec.

Segments follow the paper's split where it defines one (26, 28, 32, 42 layers), else thirds. A layer
spec is a comma-separated list of: an index (``-1`` the last, ``0``), a slice (``-4:`` the last four,
``2:8``), a segment (``early``, ``middle``, ``late``, ``all``), or fractions of depth (``0.5:`` the
upper half, ``0.25`` the layer at a quarter of the depth). No torch here.
"""

from __future__ import annotations

from layergrad.errors import InputError

PAPER_SPLITS = {32: (10, 20), 28: (7, 21), 26: (7, 20), 42: (12, 30)}
SEGMENTS = ("early", "middle", "late", "all")
HELP = "-1 (the last) | -4: (the last four) | 0,5,10 | 2:8 | early|middle|late | 0.5: (fractions of depth)"


def segment_bounds(n_layers: int, rule: str = "auto") -> dict[str, tuple[int, int]]:
    """{segment: (start, stop)}; rule 'paper' (only 26/28/32/42 layers), 'thirds', or 'auto'."""
    if rule == "paper" or (rule == "auto" and n_layers in PAPER_SPLITS):
        if n_layers not in PAPER_SPLITS:
            raise ValueError(f"the paper defines no segments for {n_layers} layers")
        a, b = PAPER_SPLITS[n_layers]
    else:
        a, b = round(n_layers / 3), round(2 * n_layers / 3)
    return {"early": (0, a), "middle": (a, b), "late": (b, n_layers), "all": (0, n_layers)}


def parse_layers(spec, n_layers: int) -> list[int]:
    """The sorted layer indices a spec selects in a model of ``n_layers`` (None or 'all': every layer);
    a spec that selects nothing or cannot be read is a one-line InputError."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return list(range(n_layers))
    parts = [str(p).strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    chosen: set[int] = set()
    for part in filter(None, parts):
        chosen.update(one_part(part, n_layers, spec))
    if not chosen:
        raise InputError(f"--layers {spec!r} selects no layer of this model's {n_layers}")
    return sorted(chosen)


def one_part(part: str, n_layers: int, spec) -> range | list[int]:
    if part in SEGMENTS:
        return range(*segment_bounds(n_layers)[part])
    try:
        if ":" in part:
            lo, hi = (position(x, n_layers) if x else None for x in part.split(":", 1))
            return range(n_layers)[slice(lo, hi)]
        index = position(part, n_layers)
    except ValueError:
        raise InputError(f"cannot read --layers {spec!r} at '{part}'; use {HELP}") from None
    if not -n_layers <= index < n_layers:
        raise InputError(f"--layers {spec!r}: layer {part} does not exist in this model's {n_layers} (0..{n_layers - 1})")
    return [index % n_layers]


def position(text: str, n_layers: int) -> int:
    """An index ('-1', '3') or a fraction of depth ('0.5' -> the layer at half the depth)."""
    if "." in text:
        fraction = float(text)
        if not 0 <= fraction <= 1:
            raise ValueError(text)
        return min(n_layers - 1, round(fraction * n_layers)) if fraction < 1 else n_layers
    return int(text)
