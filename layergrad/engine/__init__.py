"""Stage 2, engine: Samples -> per-sample gradient spectra.

projections.py (which weights, named by kind) · batching.py (padded batches) · capture.py
(hooks that capture inputs and output gradients) · spectra.py (exact singular values from the
factors) · compute.py (the loop: batch -> forward/backward -> records) · original.py (the
paper's algorithm, the baseline).
"""
