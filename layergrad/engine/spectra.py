"""Singular values of per-sample weight gradients from captured factors (docs/guide/how-it-works.md, "Exact and fast").

For one sample and a linear map y = W x with W of shape (p, d), the weight gradient is
G = Δᵀ X, where X (T, d) holds the layer inputs and Δ (T, p) the loss gradients of its
outputs at the sample's T positions. rank G ≤ min(T, p, d), so its spectrum follows from
T×T matrices when T is small:

    Xᵀ = Q R (thin QR, R is k×T)  ⇒  σ(G) = σ(R Δ)  ⇒  σ(G)² = eig of C Cᵀ, C = R Δ   ("core")

and from G itself when it is not ("dense" route: G in fp32, its short-side Gram in fp64).
Both routes return σ² of every sample as eigenvalues of a small symmetric matrix, in fp64.
Pure tensor maths: no modules, no I/O. Shapes: B samples, T positions (zero-padded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from layergrad.engine import solvers

CORE_DTYPE = torch.float64
WIDE_DELTA = 3  # the rule's choice (no plan): factor Δ as well when p >= WIDE_DELTA * T
BLOCKS = 4  # row blocks of the blocked products (plan candidates "blocked")


@dataclass(frozen=True)
class Recipe:
    """How one target's σ² are computed (the plan's choice, plan/recipes.py): ``route`` 'core' (from factors) or
    'dense' (from G); ``factor``: which side is factored on the core route ('x': R_X·Δ, shared by the
    targets that read the same input; 'delta': R_Δ·X; 'both': R_Δ·R_Xᵀ); ``method``: 'qr' or
    'cholesky' factors; ``product`` / ``gram``: 'plain' or 'blocked' (skip the zero triangle of R, or
    multiply only the upper block triangle of a Gram the eigensolvers read); ``solver``: solvers.py."""

    route: str = "core"
    factor: str = "x"
    method: str = "qr"
    product: str = "plain"
    gram: str = "plain"
    solver: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """e.g. 'core R_X·Δ qr, blocked product, plain Gram, numpy' or 'dense G, plain Gram, torch'."""
        how = {"x": "R_X·Δ", "delta": "R_Δ·X", "both": "R_Δ·R_Xᵀ"}[self.factor] + f" {self.method}, {self.product} product"
        return f"{self.route} {how if self.route == 'core' else 'G'}, {self.gram} Gram, {self.solver}"


def gram_matrix(x: torch.Tensor, delta: torch.Tensor, recipe: Recipe, x_factor=None) -> torch.Tensor:
    """(B, T, d) inputs, (B, T, p) output gradients -> (B, n, n) fp64 matrices whose eigenvalues are σ(ΔᵀX)²,
    the way ``recipe`` says. ``x_factor()``: R of X when it is shared with other targets (else made here)."""
    delta = delta.float()
    if recipe.route == "dense":
        return dense_matrix(x, delta, gram=recipe.gram)
    if recipe.factor == "delta":  # σ(ΔᵀX) = σ(XᵀΔ): the roles of X and Δ swap
        return core_matrix(input_factor(delta, recipe.method, zero_rows=False), x.float(), product=recipe.product,
                           gram=recipe.gram)
    r = x_factor() if x_factor is not None else input_factor(x, recipe.method)
    if recipe.factor == "both":  # Δᵀ = Q₂R₂ too: σ(G) = σ(R₂ Rᵀ), a T×k matrix (§5 QR route)
        r_delta = input_factor(delta, recipe.method, zero_rows=False)
        return short_gram((r_delta @ r.transpose(-1, -2)).to(CORE_DTYPE), recipe.gram)
    return core_matrix(r, delta, product=recipe.product, gram=recipe.gram)


def input_factor(x: torch.Tensor, method: str | None = None, *, zero_rows: bool = True) -> torch.Tensor:
    """(B, T, w) rows -> (B, k, T) triangular R of Xᵀ = Q R, k = min(w, T), so Rᵀ R = X Xᵀ.

    Householder QR in fp32 is backward stable (R is exact for X perturbed at fp32 rounding),
    and unlike an fp32 Gram matrix it does not square the conditioning of X. ``method``
    "cholesky" (the default on a GPU) takes R from the fp64 Cholesky factor of X Xᵀ instead, as
    accurate in fp64 and one batched call where cuSOLVER's QR runs column by column (measured on
    an H200: 0.33 s of a 0.62 s sample); QR when that Gram is numerically singular, and when a row is
    zero unless ``zero_rows`` (the other factor is zero there too, as at padding: see cholesky_factor).
    """
    if (method or ("cholesky" if x.is_cuda else "qr")) == "cholesky" and x.shape[-2] <= x.shape[-1]:
        r = cholesky_factor(x, zero_rows)
        if r is not None:
            return r
    return torch.linalg.qr(x.float().transpose(-1, -2), mode="r").R


def cholesky_factor(x: torch.Tensor, zero_rows: bool = True) -> torch.Tensor | None:
    """(B, T, d), T ≤ d -> (B, T, T) upper R = Lᵀ with L Lᵀ = X Xᵀ (fp64), or None if singular.

    A zero row of X (padding) gets a unit diagonal: that is X with one more column holding a
    unit vector there, which leaves σ(G) unchanged since Δ is zero at padded positions. That holds
    only where the *other* factor is zero too: Δ is zero at positions that reach no scored token
    while X is not, so a factor of Δ with a zero row (``zero_rows=False``) returns None (QR instead).
    """
    x64 = x.double()
    gram = x64 @ x64.transpose(-1, -2)
    padded = gram.diagonal(dim1=-2, dim2=-1) == 0
    if not zero_rows and bool(padded.any()):
        return None
    gram = gram + torch.diag_embed(padded.double())
    lower, info = torch.linalg.cholesky_ex(gram)
    if bool((info != 0).any()):  # repeated inputs (e.g. repeated tokens at layer 0)
        return None
    return lower.transpose(-1, -2).float()


def core_matrix(r: torch.Tensor, other: torch.Tensor, *, product: str = "plain", gram: str = "plain",
                dtype=CORE_DTYPE) -> torch.Tensor:
    """(B, k, T) factor of one side, (B, T, w) the other side -> Gram of C = R·other on its short side.

    G = Δᵀ X = Δᵀ Rᵀ Qᵀ and Q has orthonormal columns, so σ(G) = σ(R Δ); C is k×p, so the
    eigenproblem has size min(T, d, p), the rank bound of G. C is formed in fp32 (a
    first-order perturbation of G, like forming G itself); its Gram, which squares the
    singular values, in ``dtype`` (fp64: an fp32 Gram misplaces small σ by ~1e-3 relative).
    """
    return short_gram(triangular_product(r, other.float(), product).to(dtype), gram)


def triangular_product(r: torch.Tensor, other: torch.Tensor, product: str = "plain") -> torch.Tensor:
    """R·other for R (B, k, T) zero below its diagonal (the factors). 'blocked': each of ``BLOCKS`` row
    blocks skips the columns where R is 0 (fewer multiply-adds, more calls; a plan candidate)."""
    if product != "blocked" or r.is_cuda:
        return r @ other
    out = r.new_empty(*r.shape[:-2], r.shape[-2], other.shape[-1])
    for lo, hi in row_blocks(r.shape[-2]):
        out[..., lo:hi, :] = r[..., lo:hi, lo:] @ other[..., lo:, :]
    return out


def dense_matrix(x: torch.Tensor, delta: torch.Tensor, dtype=CORE_DTYPE, *, gram: str = "plain") -> torch.Tensor:
    """(B, T, d), (B, T, p) -> (B, n, n) Gram of G = Δᵀ X on its short side n = min(p, d).

    G is formed in fp32 (never in a low precision: rounding noise fills the null singular
    values and inflates the nuclear norm), then squared in ``dtype``.
    """
    return short_gram((delta.float().transpose(-1, -2) @ x.float()).to(dtype), gram)  # G: (B, p, d)


def short_gram(a: torch.Tensor, gram: str = "plain") -> torch.Tensor:
    """(B, m, n) -> (B, s, s) Gram on the short side s = min(m, n); the eigensolvers read only its upper
    triangle. 'blocked': only the blocks on and above the diagonal of ``BLOCKS`` row blocks are multiplied
    (5/8 of the work, more calls; a plan candidate), the rest left 0. (SciPy's ``syrk`` would halve the
    multiply-adds, but its BLAS threads spin against torch's on a CPU: measured 3x slower.)
    """
    g = a if a.shape[-2] <= a.shape[-1] else a.transpose(-1, -2)  # (B, s, long)
    if gram != "blocked" or g.is_cuda:
        return g @ g.transpose(-1, -2)
    out = g.new_zeros(*g.shape[:-2], g.shape[-2], g.shape[-2])
    for lo, hi in row_blocks(g.shape[-2]):
        out[..., lo:hi, lo:] = g[..., lo:hi, :] @ g[..., lo:, :].transpose(-1, -2)
    return out


def row_blocks(n: int) -> list[tuple[int, int]]:
    """``BLOCKS`` row ranges of about equal height covering 0..n."""
    edges = [n * i // BLOCKS for i in range(BLOCKS + 1)]
    return [(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]


def squared_singular_values(matrices: torch.Tensor, solver: str = "torch") -> torch.Tensor:
    """(..., n, n) symmetric PSD matrices (upper triangles read) -> (..., n) eigenvalues = σ²,
    descending, clamped at 0, by one of the solver backends (solvers.py)."""
    return solvers.eigenvalues(matrices, solver, solver if solver in ("torch", "numpy") else "torch")


def reference_singular_values(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """(T, d), (T, p) -> σ of G = Δᵀ X, materialised and decomposed in fp64 (slow, certain)."""
    g = delta.double().T @ x.double()
    return torch.linalg.svdvals(g)


# ----------------------------------------------------------------------------- the rule (no timing)


EIG_COST = 6.5  # eigvalsh of n×n in fp64 costs about 6.5 n³ fp32 multiply-adds
FP64 = 2.0  # an fp64 multiply-add costs two fp32 ones (half the SIMD lanes)


def core_cost(t: int, p: int, d: int, *, sharing: int = 1) -> float:
    """Flops of the core route for one sample: QR of Xᵀ (shared by ``sharing`` targets), C, Gram, eig."""
    k = min(t, d)
    qr = (2 * t * t * d - 2 * t**3 / 3) if t <= d else (2 * d * d * t - 2 * d**3 / 3)
    m = min(k, p)
    return qr / sharing + k * t * p + FP64 * m * m * max(k, p) + EIG_COST * m**3


def dense_cost(t: int, p: int, d: int) -> float:
    """Flops of the dense route for one sample: G in fp32, its short-side Gram in fp64, eig."""
    n, big = min(p, d), max(p, d)
    return t * p * d + FP64 * n * n * big + EIG_COST * n**3


def rule_recipe(t: int, p: int, d: int, *, sharing: int = 1, device: str = "cpu") -> Recipe:
    """The recipe without timing (the flop-count rule): the route with fewer flops at T positions,
    R_Δ·R_Xᵀ on a CPU when Δ is much wider than long, Cholesky factors on a GPU (one batched call
    where cuSOLVER's QR runs column by column), plain products."""
    route = "core" if core_cost(t, p, d, sharing=sharing) < dense_cost(t, p, d) else "dense"
    factor = "both" if device == "cpu" and p >= WIDE_DELTA * t else "x"
    return Recipe(route, factor, "qr" if device == "cpu" else "cholesky")
