"""Stage 2, engine: Samples -> per-sample gradient spectra.

options.py (ComputeOptions: what to compute and how; the module kinds) · layers.py (depth segments and
the --layers spec) · projections.py (which weights, named by kind) · batching.py (padded batches) ·
capture.py (hooks that capture inputs and output gradients, the backward only as deep as measured) ·
threads.py (the thread budget and the one executor) · spectra.py (exact singular values from the
factors; the recipes) · plan/ (the kernel plan: one module per decision, timed per machine) · solvers.py
(the symmetric eigensolvers) · statistics.py (the registry of spectrum statistics) · losses.py (response
losses, the kept LM-head positions) · products.py (the linear layers' products on the plan's BLAS) · ifd.py (instruction-following difficulty) · compute.py (the loop:
batch -> forward/backward -> records) · original.py (the paper's algorithm, the baseline).
"""
