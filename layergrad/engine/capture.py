"""Hooks that capture each target's inputs X and output gradients Δ for one batch, and the job
that turns them into squared singular values.

Inside ``GradientCapture`` every weight is frozen (no ``param.grad`` is ever allocated); the input of
the lowest measured decoder layer is made to require grad, so the backward pass runs through
activations only, from the loss down to that layer and no further (last-layer scoring costs about a
forward), and the output-tensor hooks fire. As soon as a target's Δ exists its job goes to the executor
(threads.Jobs): the small symmetric matrix whose eigenvalues are the squared singular values of
each sample's weight gradient (spectra.py), and its eigensolve (solvers.py), while the backward goes
on. Inputs shared by several targets (q/k/v, gate/up, the blocks of a fused module) are recognised
by tensor identity and factored once. The experts of a MoE block are measured per expert, over the tokens
routed to each (experts.py): their rows packed per sample, each expert's problems sized by its own tokens.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from layergrad.engine import experts, plan, solvers, spectra
from layergrad.engine.projections import Target, decoder_layers, take_rows
from layergrad.engine.threads import Jobs
from layergrad.errors import InputError

SAME_LAYER_PAIRS = {"q_proj": "o_proj", "k_proj": "v_proj"}  # the follow-up's same-layer cosines (q×o, k×v)


@dataclass(frozen=True)
class Span:
    """Samples [start, stop) of the batch, cut to their first ``length`` positions: the samples of
    one stacked spectral problem."""

    start: int
    stop: int
    length: int

    @property
    def samples(self) -> tuple[int, int]:
        return self.start, self.stop

    def cut(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.start:self.stop, :self.length]


def inner_products(xa: torch.Tensor, da: torch.Tensor, xb: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
    """<G_a, G_b>_F per sample of (B, T, ·) factors, G = Δᵀ X: Σ_st (Δ_a Δ_bᵀ)_st (X_a X_bᵀ)_st, never forming G."""
    return ((da @ db.transpose(-1, -2)).double() * (xa @ xb.transpose(-1, -2)).double()).sum((-1, -2))


def next_sample(mask: torch.Tensor) -> torch.Tensor:
    """Per sample of the batch, the index of the next one with real tokens (cyclic; -1 where it is the only one)."""
    real = torch.nonzero(mask.any(1)).flatten()
    partner = torch.full((mask.shape[0],), -1, dtype=torch.long, device=mask.device)
    if len(real) > 1:
        partner[real] = torch.roll(real, -1)
    return partner


def shuffled_inner_products(xa, da, xb, db, mask: torch.Tensor) -> torch.Tensor:
    """<G_a(i), G_b(next sample of the batch)>_F for every sample i (NaN where the batch holds no other sample): a
    null reference for the same-sample inner products — the alignment of two unrelated samples' gradients."""
    partner = next_sample(mask).to(xa.device)
    ok = partner >= 0
    out = torch.full((xa.shape[0],), float("nan"), dtype=torch.float64, device=xa.device)
    if bool(ok.any()):
        j = partner[ok]
        out[ok] = inner_products(xa[ok], da[ok], xb[j], db[j])
    return out


def spans_for(mask: torch.Tensor, mode: str = "auto") -> list[Span]:
    """'sample': one span per sample (exact sizes: an eigensolve costs n³; the CPU default); 'batch':
    the whole padded batch as one span (one large batched solve; the GPU default). Pad rows are zero,
    so both give the same spectra."""
    return spans_of(mask.sum(1).tolist(), whole_batch(mask, mode))


def whole_batch(mask: torch.Tensor, mode: str) -> bool:
    return mode == "batch" or (mode == "auto" and mask.is_cuda)


def spans_of(lengths: list[int], whole: bool) -> list[Span]:
    """One span per sample of non-zero length, or (``whole``) one of the batch when any has rows."""
    if whole:
        return [Span(0, len(lengths), max(lengths))] if max(lengths) > 0 else []
    return [Span(i, i + 1, n) for i, n in enumerate(lengths) if n > 0]


@dataclass
class SharedInput:
    """One captured input tensor (B, T, d) in fp32, pad rows zeroed, and its lazy factors."""

    x: torch.Tensor
    source: torch.Tensor  # the original tensor, held so its identity stays unique
    users: int = 0
    _factors: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def factor(self, span: Span, method: str | None = None) -> torch.Tensor:
        """The triangular factor of this input over one span, computed once for all its users."""
        with self._lock:
            if (span.samples, method) not in self._factors:
                self._factors[(span.samples, method)] = spectra.input_factor(span.cut(self.x), method)
            return self._factors[(span.samples, method)]


@dataclass
class Part:
    """One target over one span: the route taken, which samples are finite, their σ² (descending)."""

    span: Span
    route: str
    finite: torch.Tensor  # (b,) bool, on the CPU
    squared: torch.Tensor  # (b, n) fp64


@dataclass
class Captured:
    """All parts of one target for the current batch (filled in by its job); an expert's parts cover only the
    samples that routed tokens to it, ``routed`` holding each sample's count (None: not an expert)."""

    target: Target
    parts: list[Part] = field(default_factory=list)
    spans: list[Span] | None = None  # an expert's own spans (None: the batch's)
    routed: list[int] | None = None


class GradientCapture:
    """Context manager: freeze weights, hook ``targets``, compute per-sample squared singular values.

    ``route``: 'auto' (the kernel plan's choice per target and length, plan/recipes.py), 'core', 'dense', or
    'reference' (G materialised per sample in fp64, exact SVD); ``solve_per``: see ``spans_for``; ``solver``: solvers.py. Call
    ``start_batch`` before a batch's forward pass and ``collect`` after its backward.
    """

    def __init__(self, model: nn.Module, targets: list[Target], *, route: str = "auto", cosine: bool = False,
                 solve_per: str = "auto", solver: str = "auto", workers: int | None = None):
        self.model, self.targets, self.route, self.cosine = model, targets, route, cosine
        self.solve_per, self.solver, self.workers = solve_per, solver, workers
        self.jobs = Jobs(workers)
        self.mask: torch.Tensor | None = None  # (B, T) bool, True on real tokens
        self.spans: list[Span] = []
        self.results: list[Captured] = []
        self.inner: dict[tuple[str, int], list[torch.Tensor]] = {}  # (kind, layer) -> <G_l, G_l+1> per span
        self._previous: dict[str, tuple[int, list]] = {}  # kind -> (layer, [(X, Δ) per span])
        self.pair_inner: dict[tuple[str, int], list[torch.Tensor]] = {}  # (q_proj|k_proj, layer) -> <G_q, G_o> ...
        self._waiting: dict[tuple[str, int], tuple[Target, list]] = {}  # the first of a same-layer pair
        # the same inner products between sample i and the batch's next sample (shuffled pairs, a null reference):
        self.inner_shuffled: dict[tuple[str, int], torch.Tensor] = {}  # (kind, layer) -> <G_l(i), G_l+1(next)>
        self.pair_shuffled: dict[tuple[str, int], torch.Tensor] = {}  # (q_proj|k_proj, layer) -> <G_q(i), G_o(next)>
        self._inputs: dict[int, SharedInput] = {}
        self._experts: dict[tuple[int, int, str], list[Target]] = {}  # (id(module), expert, matrix) -> targets
        self._handles: list = []
        self._saved_requires_grad: list[tuple[nn.Parameter, bool]] = []
        self.active = False
        self.hooks_on = True

    # -- context -------------------------------------------------------------------------
    def __enter__(self) -> "GradientCapture":
        if self.active:
            raise RuntimeError("GradientCapture is already installed")
        self.active = True
        for param in self.model.parameters():
            self._saved_requires_grad.append((param, param.requires_grad))
            param.requires_grad_(False)
        lowest = decoder_layers(self.model)[1][min(t.layer for t in self.targets)]
        self._handles.append(lowest.register_forward_pre_hook(self._lowest_layer_hook, with_kwargs=True))
        by_module: dict[int, list[Target]] = {}
        for t in self.targets:
            if t.expert is not None:
                self._experts.setdefault((id(t.module), t.expert, t.weight.rsplit(".", 1)[-1]), []).append(t)
            by_module.setdefault(id(t.module), []).append(t)
        for group in by_module.values():
            module = group[0].module
            if group[0].expert is not None:
                self._handles.append(experts.Installed(module, self._on_expert))
            else:
                self._handles.append(module.register_forward_hook(self._make_forward_hook(group)))
        return self

    def __exit__(self, *exc) -> None:
        self.reset()
        for handle in self._handles:
            handle.remove()
        for param, flag in self._saved_requires_grad:
            param.requires_grad_(flag)
        self._handles, self._saved_requires_grad = [], []
        self.active = False

    @contextlib.contextmanager
    def paused(self):
        """Forward passes in the body are not captured (e.g. the extra forwards of IFD)."""
        self.hooks_on = False
        try:
            yield
        finally:
            self.hooks_on = True

    def start_batch(self, mask: torch.Tensor) -> None:
        """Set the (B, T) real-token mask of the batch about to run; drop the last batch."""
        self.reset()
        self.mask = mask
        self.spans = spans_for(mask, self.solve_per)

    def reset(self) -> None:
        self.jobs.cancel()  # an abandoned batch (e.g. out of memory): its work is dropped
        self.results, self._inputs, self.mask = [], {}, None
        self.inner, self._previous, self.pair_inner, self._waiting = {}, {}, {}, {}
        self.inner_shuffled, self.pair_shuffled = {}, {}

    def collect(self) -> list[Captured]:
        """Wait for this batch's jobs (re-raising their first error); the complete results, with every chosen
        expert no real token of the batch was routed to."""
        self.jobs.collect()
        seen = {id(c.target) for c in self.results}
        batch = self.mask.shape[0] if self.mask is not None else 0
        self.results += [Captured(t, [], [], [0] * batch) for t in self.targets
                         if t.expert is not None and id(t) not in seen]
        return self.results

    # -- hooks ---------------------------------------------------------------------------
    def _lowest_layer_hook(self, module, args, kwargs):
        """The input of the lowest measured layer requires grad: the backward runs from the loss down to
        it and no further (nothing below is measured, so nothing below needs its gradient)."""
        if self.hooks_on:
            hidden = args[0] if args else kwargs.get("hidden_states")
            if isinstance(hidden, torch.Tensor) and hidden.is_floating_point() and not hidden.requires_grad:
                hidden.requires_grad_(True)

    def _make_forward_hook(self, group: list[Target]):
        def forward_hook(module, inputs, output):
            if self.hooks_on:
                shared = self._shared_input(inputs[0], group)
                experts.router_logits(output).register_hook(lambda grad: self._on_output_grad(group, shared, grad))

        return forward_hook

    def _shared_input(self, x: torch.Tensor, group: list[Target]) -> SharedInput:
        key = id(x)
        if key not in self._inputs:
            captured = self._as_batch(x.detach()).to(torch.float32)
            if tuple(captured.shape[:2]) != tuple(self.mask.shape):
                raise InputError(f"{group[0].param}: its input has shape {tuple(x.shape)}, not (batch, tokens, "
                                 f"features) = ({self.mask.shape[0]}, {self.mask.shape[1]}, ...) in batch-major order, "
                                 "so its rows cannot be assigned to samples; leave it out with --modules")
            if not bool(self.mask.all()):  # zero the pad rows (their Δ is 0 too, but be exact)
                captured = captured * self.mask.unsqueeze(-1)
            self._inputs[key] = SharedInput(captured, x)
        shared = self._inputs[key]
        shared.users += len(group)
        return shared

    def _as_batch(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, n) of a linear map's input or output gradient, whose leading axes may be laid out otherwise
        in batch-major order: OPT's MLP flattens them to (B·T, n), DeepSeek's kv_b_proj adds one, (B, 1, T, n)."""
        b, n = self.mask.shape
        if t.dim() != 3 and t.dim() >= 2 and t.shape[:-1].numel() == b * n:
            return t.reshape(b, n, t.shape[-1])
        return t

    def _on_expert(self, module, expert: int, matrix: str, x: torch.Tensor, token: torch.Tensor,
                   y: torch.Tensor) -> None:
        """One expert's linear map in the forward (experts.measuring_forward): its input rows packed per sample
        now, its output gradient's when it comes; pad tokens are left out (their Δ is 0)."""
        group = self._experts.get((id(module), expert, matrix))
        if not self.hooks_on or not group:
            return
        real, sample, position, counts = experts.routed_rows(token, self.mask)
        if sum(counts) == 0:
            return  # only pad tokens: recorded as not routed at collect()
        packed = experts.pack_by_sample(x.detach()[real].to(torch.float32), sample, position, counts)
        shared = SharedInput(packed, x, users=len(group))
        spans = spans_of(counts, whole_batch(self.mask, self.solve_per))

        def on_grad(grad: torch.Tensor) -> None:
            delta = experts.pack_by_sample(grad.detach()[real].to(torch.float32), sample, position, counts)
            for target in group:
                captured = Captured(target, spans=spans, routed=counts)
                self.results.append(captured)
                self.jobs.submit(lambda c=captured, d=delta: self._solve(c, shared, d))

        y.register_hook(on_grad)

    def _on_output_grad(self, group: list[Target], shared: SharedInput, grad: torch.Tensor) -> None:
        grad = self._as_batch(grad)
        for target in group:
            delta = grad if target.rows is None else take_rows(grad, target.rows)
            delta = delta.detach().to(torch.float32)
            captured = Captured(target)
            self.results.append(captured)
            self.jobs.submit(lambda c=captured, s=shared, d=delta: self._solve(c, s, d))
            if self.cosine:
                self._adjacent_inner(target, shared, delta)
                self._same_layer_inner(target, shared, delta)

    # -- the job -------------------------------------------------------------------------
    def _solve(self, captured: Captured, shared: SharedInput, delta: torch.Tensor) -> None:
        spans = self.spans if captured.spans is None else captured.spans
        captured.parts = [self._part(captured.target, shared, delta, span) for span in spans]

    def _part(self, target: Target, shared: SharedInput, delta: torch.Tensor, span: Span) -> Part:
        x, delta = span.cut(shared.x), span.cut(delta)
        if self.route == "reference":
            sq = torch.stack([spectra.reference_singular_values(x[i], delta[i]) ** 2 for i in range(x.shape[0])])
            finite = torch.isfinite(sq).all(1)
            return Part(span, "reference", finite.cpu(), torch.nan_to_num(sq))
        recipe = self._recipe(target, shared, span.length)
        matrices = spectra.gram_matrix(x, delta, recipe, x_factor=lambda: shared.factor(span, recipe.method))
        finite = torch.isfinite(matrices).flatten(1).all(1)
        if not bool(finite.all()):  # flag the sample, keep the batch: NaN/Inf never reach the eigensolver
            matrices = torch.where(finite.view(-1, 1, 1), matrices, torch.zeros_like(matrices))
        solver, cpu = plan.eigensolver(self.solver, recipe.solver, matrices)
        return Part(span, recipe.route, finite.cpu(), solvers.eigenvalues(matrices, solver, cpu))

    def _adjacent_inner(self, target: Target, shared: SharedInput, delta: torch.Tensor) -> None:
        """<G_l, G_l+1>_F per sample for adjacent layers of one kind, from the factors only:
        Σ_st (Δ_l Δ_l+1ᵀ)_st (X_l X_l+1ᵀ)_st, never forming G (backward meets layer l+1 first)."""
        here = [(span.cut(shared.x), span.cut(delta)) for span in self.spans]
        previous = self._previous.get(target.kind)
        self._previous[target.kind] = (target.layer, here, (shared.x, delta))
        if previous is None or previous[0] != target.layer + 1:
            return
        key, pairs, whole = (target.kind, target.layer), list(zip(here, previous[1])), ((shared.x, delta), previous[2])
        mask = self.mask

        def job():
            self.inner[key] = [inner_products(xa, da, xb, db) for (xa, da), (xb, db) in pairs]
            self.inner_shuffled[key] = shuffled_inner_products(*whole[0], *whole[1], mask)

        self.jobs.submit(job)

    def _same_layer_inner(self, target: Target, shared: SharedInput, delta: torch.Tensor) -> None:
        """<G_q, G_o>_F and <G_k, G_v>_F of one layer from the factors (the follow-up's same-layer cosines of
        the row-major flattened gradients), where the two weights have the same shape; the two arrive in
        either order."""
        first = next((a for a, b in SAME_LAYER_PAIRS.items() if target.kind in (a, b)), None)
        if first is None:
            return
        key = (first, target.layer)
        here = [(span.cut(shared.x), span.cut(delta)) for span in self.spans]
        other = self._waiting.pop(key, None)
        if other is None:
            self._waiting[key] = (target, here, (shared.x, delta))
            return
        if (other[0].p, other[0].d) != (target.p, target.d):
            return  # e.g. q 2048x2304 and o 2304x2048: flattened elements of different shapes, not an inner product
        pairs = list(zip(here, other[1]))
        mine, theirs = (shared.x, delta), other[2]
        first_whole, second_whole = (mine, theirs) if target.kind == first else (theirs, mine)
        mask = self.mask

        def job():
            self.pair_inner[key] = [inner_products(xa, da, xb, db) for (xa, da), (xb, db) in pairs]
            self.pair_shuffled[key] = shuffled_inner_products(*first_whole, *second_whole, mask)

        self.jobs.submit(job)

    def _recipe(self, target: Target, shared: SharedInput, t: int) -> spectra.Recipe:
        """The plan's recipe for this target and length (cells are timed before the run, plan.prepare);
        a route forced by ``route`` keeps the plan's other choices where they apply."""
        chosen = plan.recipe(t, target.p, target.d, sharing=shared.users, device=shared.x.device.type, timing=False)
        if self.route in ("auto", chosen.route):
            return chosen
        return replace(chosen, route=self.route, factor="x") if self.route == "core" else replace(chosen, route="dense")
