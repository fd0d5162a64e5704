"""The kernel plan: which way of computing each step runs fastest on this machine (FFTW's wisdom).

Which kernel wins depends on the CPU, so on a CPU nothing is hard-coded: each decision times its
candidates on random matrices of the sizes a run meets, as the run calls them, and keeps the simple
default unless another candidate is at least 10% faster (noise must not flip a choice). One module per
decision, each made in one place:

- recipes.py: the route and factored side of a target's σ² (R_X·Δ, R_Δ·X, R_Δ·R_Xᵀ, dense G), QR or
  Cholesky, plain or blocked products and Grams, per cell (shape, input sharing, length on a half-octave
  grid, interpolated in log T);
- eigensolvers.py: the eigensolver per size (torch's LAPACK or numpy's; on a GPU torch, host or cupy), the
  one place ``solver='auto'`` is resolved;
- executors.py: spectral jobs on worker threads or inline, per thread budget;
- kernels.py: the library of each linear layer's product (torch's BLAS, oneDNN's, numpy's).

They share grid.py (sizes and the 10% rule), timing.py (the harness), cache.py (``plan.json`` in the user
cache under a file lock, keyed by the CPU model, torch, numpy and layergrad versions and the kernel settings
``ATEN_CPU_CAPABILITY`` / ``MKL_ENABLE_INSTRUCTIONS``; a deleted or unreadable file is timed again) and
state.py (the one holder of this process's state). report.py gives a run's plan (run.json) and
``layergrad tune``'s lines. ``LAYERGRAD_PLAN=rules`` skips timing (the defaults). Every candidate gives the
same σ² to the stated tolerance (tests/engine/test_plan.py holds each to an fp64 SVD), so a plan changes
speed, never a result beyond it.
"""

from layergrad.engine.plan import cache, eigensolvers, executors, grid, kernels, recipes, report, timing
from layergrad.engine.plan.cache import cpu_name, forget, machine_key, timing_enabled
from layergrad.engine.plan.eigensolvers import eigensolver, solver, solver_choice
from layergrad.engine.plan.executors import executor
from layergrad.engine.plan.grid import SMALL, around, bucket, cell_key, pick, representative
from layergrad.engine.plan.kernels import PRODUCT_ROWS, forced_products, product_kernel, product_kernels, product_key
from layergrad.engine.plan.recipes import VARIANTS, candidates, choose, describe, forced, recipe
from layergrad.engine.plan.report import prepare, tune, tune_model, tune_products, used
from layergrad.engine.plan.state import STATE

__all__ = ["PRODUCT_ROWS", "SMALL", "STATE", "VARIANTS", "around", "bucket", "cache", "candidates", "cell_key", "choose",
           "cpu_name", "describe", "eigensolver", "eigensolvers", "executor", "executors", "forced", "forced_products",
           "forget", "grid", "kernels", "machine_key", "pick", "prepare", "product_kernel", "product_kernels",
           "product_key", "recipe", "recipes", "report", "representative", "solver", "solver_choice", "timing",
           "timing_enabled", "tune", "tune_model", "tune_products", "used"]
