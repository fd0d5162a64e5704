"""Run batches through the model under capture and turn them into records.

For every sample the loss is the mean token cross-entropy over its response tokens; a
batch's loss is the *sum* of its samples' losses, so each sample's output gradients — and
hence its weight-gradient spectra — equal those of a batch of one (docs/guide/how-it-works.md, "Exact and fast"). One
forward and one activation-only backward per batch; weights never get a gradient.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd
import torch

from layergrad.data.formatting import DEFAULT_MAX_LENGTH, PAPER_MAX_LENGTH, Formatter, too_short
from layergrad.data.samples import Sample, meta_columns, reason_kind
from layergrad.engine import plan, solvers, statistics, threads
from layergrad.engine.batching import Item, pad_batch, plan_batches
from layergrad.engine.capture import Captured, GradientCapture, next_sample
from layergrad.engine.ifd import ifd_columns, ifd_input
from layergrad.engine.losses import logits_to_keep, response_losses
from layergrad.engine.products import planned_products
from layergrad.declare import build_options
from layergrad.engine.options import ComputeOptions
from layergrad.engine.projections import coverage, coverage_line, input_sharing, select_targets, unexpected
from layergrad.engine.threads import numpy_single_threaded, set_budget
from layergrad.errors import InputError
from layergrad.schema import samples_frame, stats_frame

SKIP_NO_RESPONSE = "no response tokens after truncation"


@dataclass
class BatchRecords:
    """Records of one batch (or of skipped samples): the rows of stats and samples tables."""

    stats: list[dict]
    samples: list[dict]
    n_tokens: int = 0


def compute(m, samples, modules=None, paper: bool = False, batch_size: int | None = None,
            batch_tokens: int | None = None, limit: int | None = None, head: bool = False, **options) -> pd.DataFrame:
    """Per-sample, per-layer, per-module gradient spectra as a tidy DataFrame.

    Args:
        m: A loaded model (``load_model``).
        samples: A list of ``Sample``, a source string, or a dict ``{condition: samples or source}``. A source's
            attributes (task, style, variant, ...) go to ``df.attrs['attributes']``, where ``analyze`` finds
            the conditions its claims compare.
        modules: ``None`` (all seven kinds; q/k/v/o with ``paper=True`` or ``recipe='oda'``), ``'all'``,
            ``'attn'``, ``'mlp'``, kinds (``'q_proj,k_proj'``) or ``'re:<regex>'`` on parameter names.
        paper: Reproduce the original script (its formatting, batch of one).
        batch_size: Samples per batch (default: 1 on a CPU, a token budget on a GPU).
        batch_tokens: Padded tokens per batch (length-sorted).
        limit: Only ``limit`` samples of each condition: a random subsample (seed 0), in source order.
        head: Take the first ``limit`` instead.
        **options: Any other compute option (``layergrad.engine.options.ComputeOptions``): ``layers``
            (``'-1'``, ``'-4:'``, ``'late'``, ...), ``max_length``, ``route``, ``solver``, ``threads``, ``spectrum``,
            ``cosine``, ``ifd``, ``reinit``, ``recipe``, ``append_eos``, ``system_prompt``.

    Returns:
        One row per (sample, layer, module) with every registered statistic; ``df.attrs['samples']`` holds one
        row per sample (loss, tokens, status and reason of a skip), ``df.attrs['plan']`` the kernel plan used,
        ``df.attrs['coverage']`` every decoder weight matrix measured or not, and why (a warning names what
        is not measured).

    Raises:
        LayergradError: A condition none of whose samples can be computed, or an unknown option (one line,
            before any forward pass).
    """
    from layergrad.data.attributes import attributes_of
    from layergrad.data.samples import Subsample, load_samples

    opts = build_options(ComputeOptions, modules=modules, paper=paper, batch_size=batch_size,
                         batch_tokens=batch_tokens, **options)
    given = samples if isinstance(samples, dict) else {"default": samples}
    take = Subsample(limit, head)
    conditions = {name: load_samples(v, limit, head=head, strict=False) if isinstance(v, str) else take.take(list(v))
                  for name, v in given.items()}
    attributes = {name: attributes_of(v) if isinstance(v, str) else {} for name, v in given.items()}
    check_usable(conditions, encode=make_formatter(m, opts.resolved()).encode)
    stats, rows = [], []

    def collect(records: BatchRecords) -> None:
        stats.extend(records.stats)
        rows.extend(records.samples)

    summary = model_coverage(m, opts)
    if unexpected(summary):  # what the model has but this version does not measure, or no layout names
        warnings.warn(coverage_line(summary), stacklevel=2)
    used = run_all(m, conditions, opts, collect)
    frame = stats_frame(stats)
    frame.attrs["plan"] = used
    frame.attrs["coverage"] = summary
    frame.attrs["samples"] = samples_frame(rows)
    frame.attrs["conditions"] = list(conditions)
    frame.attrs["attributes"] = attributes
    frame.attrs["model"] = {"alias": getattr(m, "name", ""), **getattr(m, "identity", {}),
                            **({"reinit": opts.reinit} if opts.reinit is not None else {})}
    return frame


def model_coverage(m, opts: ComputeOptions) -> dict:
    """The coverage (projections.coverage) of the targets these options select."""
    resolved = opts.resolved()
    return coverage(m.model, select_targets(m.model, resolved.modules, resolved.layers))


def run_all(m, conditions: dict[str, list[Sample]], opts: ComputeOptions, handle: Callable, *,
            skip_ids: set | None = None) -> dict:
    """Compute every sample not in ``skip_ids`` ((condition, id) pairs); ``handle`` receives each
    batch's records in order, the skipped samples' first. Returns the kernel plan used (plan.used)."""
    opts = opts.resolved()
    if opts.threads:
        set_budget(opts.threads)
    if opts.reinit is not None and m.identity.get("reinit") != opts.reinit:
        m = reinitialised_copy(m, opts.reinit)
    used: dict = {}
    for records in iter_records(m, conditions, opts, skip_ids or set(), used):
        handle(records)
    return used


def reinitialised_copy(m, seed: int):
    """A copy of ``m`` with re-initialised weights (the caller's model stays as it is)."""
    import copy

    from layergrad.models import LoadedModel, reinitialise

    clone = LoadedModel(copy.deepcopy(m.model), m.tokenizer, m.name, m.is_chat, dict(m.identity))
    return reinitialise(clone, seed)


def iter_records(m, conditions: dict[str, list[Sample]], opts: ComputeOptions, skip_ids: set,
                 used_plan: dict | None = None) -> Iterator:
    """The skipped samples' records first, then each batch's after its forward and backward;
    ``used_plan`` receives the kernel plan of the run."""
    formatter = make_formatter(m, opts)
    items, skipped = prepare_items(formatter, conditions, skip_ids, ifd=opts.ifd)
    if skipped:
        yield BatchRecords([], skipped)
    targets = select_targets(m.model, opts.modules, opts.layers)
    device = m.model.get_input_embeddings().weight.device
    solvers.check(opts.solver, device)  # before any forward pass
    batch_size, batch_tokens = opts.batch_size, opts.batch_tokens
    if batch_size is None and batch_tokens is None and device.type != "cuda":
        batch_size = 1  # measured: on a CPU, padding costs more than batching saves
    batches = plan_batches(items, batch_size=batch_size, batch_tokens=batch_tokens)
    size = threads.workers()  # worker threads of the jobs, unless the plan timed them inline as faster
    if size and device.type == "cpu" and plan.executor(size) == "inline":
        size = 0
    used = plan.prepare(device, plan_cells(targets, [it.encoded.n_tokens for it in items]))  # timed once per machine
    if used_plan is not None:
        used_plan.update(used)
    m.model.eval()
    with numpy_single_threaded(), GradientCapture(m.model, targets, route=opts.route, cosine=opts.cosine,
                                                  solve_per=opts.solve_per, solver=opts.solver, workers=size) as cap:
        for batch in batches:
            yield from run_with_backoff(m, cap, batch, opts)


def plan_cells(targets, lengths: list[int]) -> set[tuple[int, int, int, int]]:
    """Every (T, p, d, sharing) cell of the kernel plan a run may meet: each target shape, with the
    number of targets reading its input, at each sample length."""
    return {(t, target.p, target.d, sharing) for target, sharing in input_sharing(targets) for t in set(lengths)}


def make_formatter(m, opts: ComputeOptions) -> Formatter:
    """The Formatter of a model and options; the token budget never exceeds the model's positions."""
    positions = model_positions(m.model)
    max_length = opts.max_length
    if max_length and positions and max_length > positions:
        raise InputError(f"--max-length {max_length} exceeds the {positions} positions this model has; "
                         f"use --max-length {positions} or less")
    if max_length is None and positions:
        max_length = min(positions, PAPER_MAX_LENGTH if opts.paper else DEFAULT_MAX_LENGTH)
    return Formatter(m.tokenizer, chat=m.is_chat, system_prompt=opts.system_prompt,
                     append_eos=opts.append_eos, max_length=max_length, paper=opts.paper,
                     model_name=getattr(m, "name", ""), oda=opts.recipe == "oda")


def model_positions(model) -> int | None:
    """The longest sequence the model's position embeddings allow (None: no such limit is known)."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prepare_items(formatter: Formatter, conditions, skip_ids, *, ifd: bool = False) -> tuple[list[Item], list[dict]]:
    """Encode every sample (and its IFD inputs); unusable ones become skip rows with their reason."""
    items, skipped = [], []
    for condition, samples in conditions.items():
        for s in samples:
            if (condition, s.sample_id) in skip_ids:
                continue
            if s.problem:
                skipped.append(sample_row(s, condition, None, status="skipped", reason=s.problem))
                continue
            enc = formatter.encode(s)
            short = SKIP_NO_RESPONSE if enc.n_response == 0 else too_short(s, enc)
            if short:
                skipped.append(sample_row(s, condition, enc, status="skipped", reason=short))
            else:
                items.append(Item(condition, s, enc, ifd_input(formatter, s, enc) if ifd else None))
    return items, skipped


def skip_reason(sample: Sample, encode: Callable | None = None) -> str:
    """Why ``sample`` cannot be computed ('' when it can); ``encode`` also checks its tokens."""
    if sample.problem:
        return sample.problem
    if encode is None:
        return ""
    encoded = encode(sample)
    return SKIP_NO_RESPONSE if encoded.n_response == 0 else too_short(sample, encoded)


def unusable(conditions: dict[str, list[Sample]], skip_ids=frozenset(), encode: Callable | None = None) -> dict[str, str]:
    """{condition: why} of every condition none of whose pending samples can be computed (data problems;
    with ``encode`` also samples without response tokens)."""
    out = {}
    for condition, samples in conditions.items():
        pending = [s for s in samples if (condition, s.sample_id) not in skip_ids]
        reasons = [skip_reason(s, encode) for s in pending]
        if pending and all(reasons):
            common = Counter(map(reason_kind, reasons)).most_common(2)
            listed = "; ".join(f"{n}x {r}" for r, n in common)
            out[condition] = f"none of its {len(pending)} samples can be computed ({listed}; first: {reasons[0]})"
    return out


def check_usable(conditions: dict[str, list[Sample]], skip_ids=frozenset(), encode: Callable | None = None) -> None:
    """Raise an InputError naming the first condition none of whose pending samples can be computed."""
    for condition, why in unusable(conditions, skip_ids, encode).items():
        raise InputError(f"condition '{condition}': {why}; fix the data or leave the condition out")


def run_with_backoff(m, cap: GradientCapture, batch: list[Item], opts) -> Iterator[BatchRecords]:
    """Run one batch; on out-of-memory, retry it in halves (a batch of one re-raises)."""
    try:
        yield run_batch(m, cap, batch, opts)
    except torch.OutOfMemoryError:
        cap.reset()
        if len(batch) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(batch) // 2
        yield from run_with_backoff(m, cap, batch[:half], opts)
        yield from run_with_backoff(m, cap, batch[half:], opts)


def run_batch(m, cap: GradientCapture, batch: list[Item], opts: ComputeOptions) -> BatchRecords:
    """Forward + activation-only backward of one padded batch (the per-target jobs run meanwhile)
    -> its records."""
    device = m.model.get_input_embeddings().weight.device
    pad_id = m.tokenizer.pad_token_id if m.tokenizer.pad_token_id is not None else 0
    ids, mask, scored = pad_batch(batch, pad_id, device)
    cap.start_batch(mask)
    keep = logits_to_keep(m.model, scored)
    extra = {"logits_to_keep": keep} if keep else {}
    kernels = plan.product_kernels(m.model, ids, keep)
    with planned_products(m.model, kernels) as products:
        logits = m.model(input_ids=ids, attention_mask=mask.long(), use_cache=False, **extra).logits
        first = ids.shape[1] - logits.shape[1]  # logits[:, j] predict token first + j + 1
        losses = response_losses(logits, ids[:, first:], scored[:, first:], reuse_logits=products.owns(logits))
        del logits
        losses.sum().backward()
    results = cap.collect()
    stat_rows = spectra_rows(results, batch, opts)
    if opts.cosine:
        add_adjacent_cosines(stat_rows, cap.inner, cap.spans, batch)
        add_same_layer_cosines(stat_rows, cap.pair_inner, cap.spans, batch)
        add_shuffled_cosines(stat_rows, cap.inner_shuffled, cap.pair_shuffled, next_sample(cap.mask).tolist(), batch)
    cap.reset()
    sample_rows = [sample_row(it.sample, it.condition, it.encoded, loss=float(loss), status="ok")
                   for it, loss in zip(batch, losses.detach().cpu())]
    if opts.ifd:
        with cap.paused():
            extra = ifd_columns(m, [it.ifd for it in batch], [r["loss"] for r in sample_rows], device)
        for row, values in zip(sample_rows, extra):
            row.update(values)
    mark_nonfinite(sample_rows, stat_rows)
    return BatchRecords(stat_rows, sample_rows, sum(it.encoded.n_tokens for it in batch))


def spectra_rows(results: list[Captured], batch: list[Item], opts: ComputeOptions) -> list[dict]:
    """Every target's σ² -> one stats row per (sample, target); an expert's rows carry its index and the sample's
    tokens routed to it (a sample that routed none gets a row saying so, its statistics NaN), and each MoE
    layer's experts get one summary row per sample and matrix (expert_summary_rows)."""
    pairs = [(cap, part) for cap in results for part in cap.parts]
    stats = batched_stats([part.squared for _, part in pairs], [min(c.target.p, c.target.d) for c, _ in pairs])
    rows = []
    for (cap, part), part_stats in zip(pairs, stats):
        finite = part.finite.tolist()
        for j, item in enumerate(batch[part.span.start:part.span.stop]):
            routed = cap.routed[part.span.start + j] if cap.routed is not None else None
            if routed != 0:
                rows.append(stat_row(item, cap.target, part.route, part_stats[j], part.squared[j], finite[j], opts,
                                     routed=routed))
    for cap in (c for c in results if c.routed is not None):
        rows += [not_routed_row(item, cap.target, opts) for item, n in zip(batch, cap.routed) if n == 0]
    return rows + expert_summary_rows(results, batch, opts)


EXPERTS_ROUTE = "experts"  # the route of a summary row: the union of its experts' spectra


def expert_summary_rows(results: list[Captured], batch: list[Item], opts: ComputeOptions) -> list[dict]:
    """One row per sample, MoE layer and expert matrix: the statistics of the layer's experts taken together as
    one block-diagonal map diag(G_1, ..., G_E), whose singular values are exactly the union of the experts'
    (its nuclear norm the sum of theirs, its Frobenius norm the root of the sum of their squares, its σ1 their
    largest); module ``experts.<matrix>``, rank bound the sum of the experts'. Written only where every expert
    of the matrix was measured."""
    from layergrad.engine.experts import union_spectra

    groups: dict[tuple, list[Captured]] = {}
    for cap in (c for c in results if c.routed is not None):
        groups.setdefault((cap.target.layer, cap.target.weight), []).append(cap)
    rows, unions, fulls, keys = [], [], [], []
    for (layer, weight), caps in groups.items():
        t = caps[0].target
        if len(caps) != t.module.num_experts:
            continue
        squared, finite = union_spectra(caps, len(batch))
        for k, item in enumerate(batch):
            unions.append(squared[k].unsqueeze(0))
            fulls.append(len(caps) * min(t.p, t.d))
            keys.append((item, t, finite[k], sum(min(c.routed[k], t.p, t.d) for c in caps),
                         sum(c.routed[k] for c in caps)))
    for (item, t, finite, bound, routed), values, sq, n_full in zip(keys, batched_stats(unions, fulls), unions,
                                                                     fulls):
        row = stat_row(item, t, EXPERTS_ROUTE, values[0], sq[0], finite, opts, routed=routed, n_full=n_full,
                       rank_bound=bound)
        rows.append({**row, "module": t.kind.replace("expert.", "experts."), "param": t.weight, "expert": None})
    return rows


def not_routed_row(item: Item, t, opts: ComputeOptions) -> dict:
    """The row of an expert the sample routed no real token to: no gradient, recorded as such (NaN, not 0)."""
    names = statistics.names()
    row = {"sample_id": item.sample.sample_id, "condition": item.condition, "layer": t.layer, "module": t.kind,
           "param": t.param, **{n: math.nan for n in names}, "rank_bound": 0, "finite": True, "route": NOT_ROUTED,
           "expert": t.expert, "routed_tokens": 0}
    if opts.spectrum:
        row["spectrum"] = []
    return row


NOT_ROUTED = "not routed"


def batched_stats(squared: list[torch.Tensor], n_fulls: list[int]) -> list[list[list[float]]]:
    """The statistics of every part's σ² rows, one call per (width, n_full, device): per part, a list
    of the registered statistics per sample (210 small calls cost more than the eigensolves of a short
    sample)."""
    out: list = [None] * len(squared)
    groups: dict[tuple, list[int]] = {}
    for k, (sq, n_full) in enumerate(zip(squared, n_fulls)):
        groups.setdefault((sq.shape[-1], n_full, sq.device), []).append(k)
    for (_, n_full, _), ks in groups.items():
        spectrum = statistics.Spectrum(torch.cat([squared[k] for k in ks]), n_full)
        values = statistics.evaluate(spectrum).cpu().tolist()
        start = 0
        for k in ks:
            out[k], start = values[start:start + len(squared[k])], start + len(squared[k])
    return out


def stat_row(item: Item, t, route: str, stats: list[float], sq: torch.Tensor, finite: bool, opts, *,
             routed: int | None = None, n_full: int | None = None, rank_bound: int | None = None) -> dict:
    """One stats row; ``routed``: an expert's tokens from this sample (its rank bound); ``n_full`` and
    ``rank_bound``: a MoE layer's summary's (the block-diagonal map's), else the target's own."""
    n_full = n_full or min(t.p, t.d)
    if rank_bound is None:
        rank_bound = min(item.encoded.n_tokens if routed is None else routed, n_full)
    names = statistics.names()
    values = stats if finite else [math.nan] * len(names)
    row = {"sample_id": item.sample.sample_id, "condition": item.condition, "layer": t.layer,
           "module": t.kind, "param": t.param, **dict(zip(names, values)),
           "rank_bound": rank_bound, "finite": finite, "route": route}
    if routed is not None:
        row.update(expert=t.expert, routed_tokens=routed)
    if finite and rank_bound < n_full and "sigma_min" in row:
        row["sigma_min"] = 0.0
    if opts.spectrum:
        row["spectrum"] = sq[:rank_bound].clamp_min(0).sqrt().tolist() if finite else []
    return row


def per_sample(inner_products: dict, spans: list, batch: list[Item]) -> dict:
    """{(sample_id, kind, layer): value} of per-span inner products."""
    out = {}
    for (kind, layer), per_span in inner_products.items():
        for span, values in zip(spans, per_span):
            for item, value in zip(batch[span.start:span.stop], values.tolist()):
                out[(item.sample.sample_id, kind, layer)] = value
    return out


def add_same_layer_cosines(rows: list[dict], inner_products: dict, spans: list, batch: list[Item]) -> None:
    """cosine_pair = cos(G_q, G_o) on the q_proj rows and cos(G_k, G_v) on the k_proj rows (NaN elsewhere
    and where the two shapes differ)."""
    from layergrad.engine.capture import SAME_LAYER_PAIRS

    fro = {(r["sample_id"], r["module"], r["layer"]): r["frobenius_norm"] for r in rows}
    inner = per_sample(inner_products, spans, batch)
    for r in rows:
        key = (r["sample_id"], r["module"], r["layer"])
        partner = SAME_LAYER_PAIRS.get(r["module"])
        norms = fro[key] * fro.get((r["sample_id"], partner, r["layer"]), math.nan) if partner else math.nan
        r["cosine_pair"] = inner[key] / norms if key in inner and norms > 0 else math.nan


def add_adjacent_cosines(rows: list[dict], inner_products: dict, spans: list, batch: list[Item]) -> None:
    """cosine_next = <G_l, G_l+1> / (‖G_l‖ ‖G_l+1‖) for each row (NaN for the last layer)."""
    fro = {(r["sample_id"], r["module"], r["layer"]): r["frobenius_norm"] for r in rows}
    inner = per_sample(inner_products, spans, batch)
    for r in rows:
        key = (r["sample_id"], r["module"], r["layer"])
        value = inner.get(key, math.nan)
        norms = fro[key] * fro.get((r["sample_id"], r["module"], r["layer"] + 1), math.nan)
        r["cosine_next"] = value / norms if norms > 0 else math.nan


def add_shuffled_cosines(rows: list[dict], adjacent: dict, same_layer: dict, partner: list[int],
                         batch: list[Item]) -> None:
    """cosine_next_shuffled and cosine_pair_shuffled: the two cosines with the second gradient taken from the batch's
    next sample (``partner``: its index, -1 for none) — unrelated gradients, the reference 'near zero' is held
    against (NaN where the batch holds one sample)."""
    from layergrad.engine.capture import SAME_LAYER_PAIRS

    fro = {(r["sample_id"], r["module"], r["layer"]): r["frobenius_norm"] for r in rows}
    index = {item.sample.sample_id: i for i, item in enumerate(batch)}
    for r in rows:
        i = index[r["sample_id"]]
        j = partner[i] if i < len(partner) else -1
        other = batch[j].sample.sample_id if j >= 0 else None
        for column, table, module, layer in (("cosine_next_shuffled", adjacent, r["module"], r["layer"] + 1),
                                             ("cosine_pair_shuffled", same_layer, SAME_LAYER_PAIRS.get(r["module"]),
                                              r["layer"])):
            values = table.get((r["module"], r["layer"]))
            norms = fro[(r["sample_id"], r["module"], r["layer"])] * fro.get((other, module, layer), math.nan)
            r[column] = float(values[i]) / norms if values is not None and other is not None and norms > 0 else math.nan


def mark_nonfinite(sample_rows: list[dict], stat_rows: list[dict]) -> None:
    """Flag samples with a non-finite loss or gradient (their stats rows hold NaN)."""
    bad: dict[str, int] = {}
    for row in stat_rows:
        if not row["finite"]:
            bad[row["sample_id"]] = bad.get(row["sample_id"], 0) + 1
    for row in sample_rows:
        if row["sample_id"] in bad or not math.isfinite(row["loss"]):
            row["status"] = "nonfinite"
            row["reason"] = f"non-finite loss or gradient ({bad.get(row['sample_id'], 0)} modules)"


def sample_row(s: Sample, condition: str, enc, *, loss: float = math.nan, status: str,
               reason: str = "") -> dict:
    return {"sample_id": s.sample_id, "condition": condition, "source_index": s.source_index,
            "loss": loss, "n_tokens": enc.n_tokens if enc else 0,
            "n_prompt_tokens": min(enc.n_prompt, enc.n_tokens) if enc else 0,
            "n_response_tokens": enc.n_response if enc else 0,
            "truncated": bool(enc.truncated) if enc else False, "status": status, "reason": reason,
            "boundary": enc.boundary if enc else "", "prompt": s.prompt, "response": s.response,
            **meta_columns(s)}
