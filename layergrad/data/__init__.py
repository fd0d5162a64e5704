"""Stage 1, data: records -> Samples.

samples.py (the Sample, file formats, sources) · paper.py (the paper's datasets) ·
arith.py (built-in arithmetic problems) · conditions.py (irrelevant responses, response
styles) · formatting.py (chat templates, tokens and the response mask).
"""

from layergrad.data.samples import Sample, load_samples

__all__ = ["Sample", "load_samples"]
