"""layergrad: per-sample, per-layer gradient spectra of language models.

    import layergrad
    m = layergrad.load_model("smollm2-135m-instruct")
    samples = layergrad.load_samples("paper:gsm8k/detailed", limit=20)
    df = layergrad.compute(m, samples)             # one row per sample x layer x module
    df.groupby(["layer", "module"]).nuclear_norm.mean()
    result = layergrad.analyze(df)                 # .claims, .curves, .auroc, ... as DataFrames
    result.figure("headline"); result.write("analysis/")
"""

__version__ = "0.1.0"
__all__ = ["load_model", "load_samples", "compute", "analyze", "LayerGradCallback", "Sample", "LayergradError",
           "register_statistic", "score", "tune", "reproduce", "__version__"]


def __getattr__(name):  # lazy: `layergrad --help` must not import torch
    if name == "load_model":
        from layergrad.models import load_model
        return load_model
    if name in ("load_samples", "Sample"):
        from layergrad.data import samples
        return getattr(samples, name)
    if name == "compute":
        from layergrad.engine.compute import compute
        return compute
    if name == "analyze":
        from layergrad.analysis.analyze import analyze
        return analyze
    if name == "LayerGradCallback":
        from layergrad.callback import LayerGradCallback
        return LayerGradCallback
    if name == "score":
        from layergrad.scoring import score
        return score
    if name == "reproduce":
        from layergrad.reproduction import run_study
        return run_study
    if name == "tune":
        from layergrad.engine.plan import tune_model
        return tune_model
    if name == "register_statistic":
        from layergrad.engine.statistics import register_statistic
        return register_statistic
    if name == "LayergradError":
        from layergrad.errors import LayergradError
        return LayergradError
    raise AttributeError(f"module 'layergrad' has no attribute {name!r}")
