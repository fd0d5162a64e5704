"""Singular values of per-sample weight gradients from captured factors (PAPER.md §5).

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

import torch

from layergrad.engine import solvers

CORE_DTYPE = torch.float64
WIDE_DELTA = 3  # factor Δ as well when p >= WIDE_DELTA * T
UPPER_FROM, GRAM_BLOCKS = 256, 4  # on a CPU, blocked products that skip the zero triangles


def input_factor(x: torch.Tensor, method: str | None = None) -> torch.Tensor:
    """(B, T, d) inputs -> (B, k, T) triangular R of Xᵀ = Q R, k = min(d, T), so Rᵀ R = X Xᵀ.

    Householder QR in fp32 is backward stable (R is exact for X perturbed at fp32 rounding),
    and unlike an fp32 Gram matrix it does not square the conditioning of X. On a GPU
    (``method`` "cholesky", the default there) R comes from the fp64 Cholesky factor of X Xᵀ
    instead, as accurate in fp64 and one batched call where cuSOLVER's QR runs column by column
    (measured on an H200: 0.33 s of a 0.62 s sample); QR when that Gram is numerically singular.
    """
    if (method or ("cholesky" if x.is_cuda else "qr")) == "cholesky" and x.shape[-2] <= x.shape[-1]:
        r = cholesky_factor(x)
        if r is not None:
            return r
    return torch.linalg.qr(x.float().transpose(-1, -2), mode="r").R


def cholesky_factor(x: torch.Tensor) -> torch.Tensor | None:
    """(B, T, d), T ≤ d -> (B, T, T) upper R = Lᵀ with L Lᵀ = X Xᵀ (fp64), or None if singular.

    A zero row of X (padding) gets a unit diagonal: that is X with one more column holding a
    unit vector there, which leaves σ(G) unchanged since Δ is zero at padded positions.
    """
    x64 = x.double()
    gram = x64 @ x64.transpose(-1, -2)
    padded = gram.diagonal(dim1=-2, dim2=-1) == 0
    gram = gram + torch.diag_embed(padded.double())
    lower, info = torch.linalg.cholesky_ex(gram)
    if bool((info != 0).any()):  # repeated inputs (e.g. repeated tokens at layer 0)
        return None
    return lower.transpose(-1, -2).float()


def core_matrix(r: torch.Tensor, delta: torch.Tensor, dtype=CORE_DTYPE) -> torch.Tensor:
    """(B, k, T) factor of X, (B, T, p) output gradients -> Gram of C = R Δ on its short side.

    G = Δᵀ X = Δᵀ Rᵀ Qᵀ and Q has orthonormal columns, so σ(G) = σ(R Δ); C is k×p, so the
    eigenproblem has size min(T, d, p), the rank bound of G. C is formed in fp32 (a
    first-order perturbation of G, like forming G itself); its Gram, which squares the
    singular values, in ``dtype`` (fp64: an fp32 Gram misplaces small σ by ~1e-3 relative).
    When Δ is much wider than long (p ≥ 3T, e.g. gate/up of short samples), Δᵀ = Q₂R₂ too and
    σ(G) = σ(R₂ Rᵀ), a T×k matrix: its fp64 Gram costs T²k instead of k²p (measured 1.5x
    faster at T = 107-251, p = 1536; no gain below p = 3T). Not on a GPU: there cuSOLVER's QR runs
    column by column (measured on an H200: 0.7 s of a 1.7 s sample went to QR) while the fp64 Gram
    of the wide C is one fast product.
    """
    delta = delta.float()
    if not delta.is_cuda and delta.shape[-1] >= WIDE_DELTA * delta.shape[-2]:  # p >> T: factor Δ too (§5)
        return short_gram((input_factor(delta) @ r.transpose(-1, -2)).to(dtype))  # R_Δ R_Xᵀ: (B, T, k)
    return short_gram(triangular_product(r, delta).to(dtype))  # C: (B, k, p)


def triangular_product(r: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """R Δ for R (B, k, T) zero below its diagonal (the input factors). On a CPU from k = ``UPPER_FROM``
    on, each row block skips the columns where R is 0 (measured 1.3-1.5x faster at k = 540)."""
    k = r.shape[-2]
    if r.is_cuda or k < UPPER_FROM:
        return r @ delta
    out = r.new_empty(*r.shape[:-2], k, delta.shape[-1])
    for lo, hi in row_blocks(k):
        out[..., lo:hi, :] = r[..., lo:hi, lo:] @ delta[..., lo:, :]
    return out


def dense_matrix(x: torch.Tensor, delta: torch.Tensor, dtype=CORE_DTYPE) -> torch.Tensor:
    """(B, T, d), (B, T, p) -> (B, n, n) Gram of G = Δᵀ X on its short side n = min(p, d).

    G is formed in fp32 (never in a low precision: rounding noise fills the null singular
    values and inflates the nuclear norm), then squared in ``dtype``.
    """
    return short_gram((delta.float().transpose(-1, -2) @ x.float()).to(dtype))  # G: (B, p, d)


def short_gram(a: torch.Tensor) -> torch.Tensor:
    """(B, m, n) -> (B, s, s) Gram on the short side s = min(m, n); the eigensolvers read only its
    upper triangle. On a CPU, from s = ``UPPER_FROM`` on, only the blocks on and above the diagonal
    of ``GRAM_BLOCKS`` row blocks are multiplied (5/8 of the work; measured 1.3x faster at
    s = 540), the rest left 0. (SciPy's ``syrk`` would halve the multiply-adds, but its BLAS threads
    spin against torch's on a CPU and cost more than they save: measured 3x slower.)
    """
    g = a if a.shape[-2] <= a.shape[-1] else a.transpose(-1, -2)  # (B, s, long)
    s = g.shape[-2]
    if g.is_cuda or s < UPPER_FROM:
        return g @ g.transpose(-1, -2)
    out = g.new_zeros(*g.shape[:-2], s, s)
    for lo, hi in row_blocks(s):
        out[..., lo:hi, lo:] = g[..., lo:hi, :] @ g[..., lo:, :].transpose(-1, -2)
    return out


def row_blocks(n: int) -> list[tuple[int, int]]:
    """``GRAM_BLOCKS`` row ranges of about equal height covering 0..n."""
    edges = [n * i // GRAM_BLOCKS for i in range(GRAM_BLOCKS + 1)]
    return list(zip(edges, edges[1:]))


def squared_singular_values(matrices: torch.Tensor, solver: str = "auto") -> torch.Tensor:
    """(..., n, n) symmetric PSD matrices (upper triangles read) -> (..., n) eigenvalues = σ²,
    descending, clamped at 0, by one of the solver backends (solvers.py)."""
    return solvers.eigenvalues(matrices, solver)


def reference_singular_values(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """(T, d), (T, p) -> σ of G = Δᵀ X, materialised and decomposed in fp64 (slow, certain)."""
    g = delta.double().T @ x.double()
    return torch.linalg.svdvals(g)


# ----------------------------------------------------------------------------- cost rule


EIG_COST = 6.5  # measured: eigvalsh of n×n in fp64 costs about 6.5 n³ fp32 multiply-adds
# Relative costs of a multiply-add against one of a threaded fp32 matrix product, measured on the
# 2-core CPU (SmolLM2 Detailed-CoT shapes): an fp64 product 2.4x, a one-thread Householder QR 4x (its
# panel steps are memory-bound). On a GPU the rule keeps the plain flop counts (not measured there).
COSTS = {"cpu": {"fp64": 2.4, "qr": 4.0}, "cuda": {"fp64": 2.0, "qr": 1.0}}


def core_cost(t: int, p: int, d: int, *, sharing: int = 1, device: str = "cpu") -> float:
    """Cost of the core route for one sample: QR of Xᵀ (shared by ``sharing`` targets), C, Gram, eig."""
    c = COSTS.get(device, COSTS["cuda"])
    k = min(t, d)
    qr = (2 * t * t * d - 2 * t**3 / 3) if t <= d else (2 * d * d * t - 2 * d**3 / 3)
    m = min(k, p)
    return c["qr"] * qr / sharing + k * t * p + c["fp64"] * m * m * max(k, p) + EIG_COST * m**3


def dense_cost(t: int, p: int, d: int, *, device: str = "cpu") -> float:
    """Cost of the dense route for one sample: G in fp32, its short-side Gram in fp64, eig."""
    c = COSTS.get(device, COSTS["cuda"])
    n, big = min(p, d), max(p, d)
    return t * p * d + c["fp64"] * n * n * big + EIG_COST * n**3


def choose_route(t: int, p: int, d: int, *, sharing: int = 1, device: str = "cpu") -> str:
    """'core' or 'dense', whichever costs less at T positions on this device type (PAPER.md §5 cost rule)."""
    cheaper = core_cost(t, p, d, sharing=sharing, device=device) < dense_cost(t, p, d, device=device)
    return "core" if cheaper else "dense"
