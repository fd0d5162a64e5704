"""Watch the layers while fine-tuning: a transformers ``TrainerCallback`` that probes the model.

    from layergrad import LayerGradCallback
    probe = {"none": layergrad.load_samples("paper:gsm8k/none", limit=16), ...}
    trainer = Trainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    LayerGradCallback(probe, every=10, out="probes").attach(trainer)
    trainer.train()

Every ``every`` optimiser steps (and at step 0) the per-sample spectra of the fixed probe set are
computed on the model as it is being trained, in eval mode and without touching any parameter's
``.grad``; the optimiser state, the RNG states and the model's train/eval mode are left as found,
so training runs exactly as it would without the callback. Each probe is a normal run directory
(``out/step-000010/``, its run.json naming the step) for ``layergrad analyze`` / ``compare``, and
``layergrad analyze out/step-* --over-steps`` draws the curves against the step. A few scalars
per condition (mean early-layer nuclear norm, MAD over all layers) go to the trainer's loggers
(TensorBoard, W&B, ``state.log_history``) when the callback is attached with ``attach(trainer)``;
passed as ``callbacks=[...]`` it appends them to ``state.log_history`` only.

Under DDP every rank computes its share of the probe set and rank 0 merges, as with torchrun
``compute``. Sharded parameters (FSDP, DeepSpeed ZeRO-3) are not supported: the probe needs the
whole weight of each layer on one rank.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from layergrad.analysis.summary import summary_table
from layergrad.data.samples import Sample, load_samples
from layergrad.errors import InputError
from layergrad.models import LoadedModel
from layergrad.runs.config import RunConfig
from layergrad.runs.runner import run
from layergrad.runs.sharding import current_world
from layergrad.runs.store import load_run


class LayerGradCallback(TrainerCallback):
    """Probe the per-sample gradient spectra of a fixed probe set every ``every`` optimiser steps.

    Each probe is a normal run directory (``out/step-NNNNNN``); its summary scalars go to the trainer's
    loggers. Training itself is left exactly as it would be (weights, optimiser state and RNG untouched).

    Args:
        probe: ``{condition: list of Sample or a source string}``.
        every: Probe every this many optimiser steps (and at step 0).
        out: Folder of the step runs.
        modules: What to compute (as in ``compute``).
        metrics: What to log.
        tokenizer: Else the trainer's ``processing_class``.
        log_scalars: Log the summary scalars through ``trainer.log``.
        **options: More run options (``max_length``, ``batch_size``, ``system_prompt``, ``layers``, ...).
    """

    def __init__(self, probe: dict, every: int = 100, out: str | Path = "layergrad-probes", *, modules=None,
                 metrics=("nuclear_norm",), tokenizer=None, log_scalars: bool = True, **options):
        if every < 1:
            raise InputError(f"every must be a positive number of steps, got {every}")
        if not probe:
            raise InputError("the probe set is empty; pass {condition: samples}")
        self.probe = {name: load_samples(s, strict=False) if isinstance(s, (str, Path)) else list(s)
                      for name, s in probe.items()}
        for name, samples in self.probe.items():
            if not all(isinstance(s, Sample) for s in samples):
                raise InputError(f"probe condition '{name}': pass layergrad Samples or a source string")
        self.every, self.out, self.modules, self.metrics = every, Path(out), modules, tuple(metrics)
        self.tokenizer, self.log_scalars, self.options = tokenizer, log_scalars, options
        self.trainer = None
        self.done: set[int] = set()

    def attach(self, trainer) -> "LayerGradCallback":
        """Add this callback to ``trainer`` and log through ``trainer.log`` (all its loggers)."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    # -- trainer events ------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.probe_now(state, control, kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self.probe_now(state, control, kwargs)

    # -- the probe -----------------------------------------------------------------------
    def probe_now(self, state, control, kwargs) -> Path | None:
        """Compute the probe set on the model as it is now, leaving training exactly as it was."""
        step = int(state.global_step)
        if step in self.done:
            return None
        self.done.add(step)
        model = unwrap(kwargs["model"])
        tokenizer = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        if tokenizer is None:
            raise InputError("LayerGradCallback needs the tokenizer: pass tokenizer= or give the Trainer processing_class")
        loaded = LoadedModel(model, tokenizer, getattr(model, "name_or_path", "") or type(model).__name__,
                             bool(getattr(tokenizer, "chat_template", None)),
                             {"model_type": model.config.model_type, "num_layers": model.config.num_hidden_layers,
                              "device": str(next(model.parameters()).device), "step": step})
        out = self.out / f"step-{step:06d}"
        config = RunConfig.build(model=loaded.name, data={c: f"probe:{c}" for c in self.probe}, out=str(out),
                                 modules=self.modules, quiet=True, overwrite=True, **self.options)
        with preserved(model):
            run(config, model=loaded, conditions=self.probe, extra={"step": step}, log=lambda *a: None,
                thread_budget=False)
        if self.log_scalars and current_world().main:
            self.log(state, control, scalars(out, self.metrics))
        return out

    def log(self, state, control, values: dict) -> None:
        """Through ``trainer.log`` (every logger) when attached, else into ``state.log_history``;
        the trainer's own pending decisions (log the loss, evaluate, save, stop) stay as they were."""
        if self.trainer is None:
            state.log_history.append({**values, "step": state.global_step})
            return
        flags = {k: v for k, v in vars(control).items() if k.startswith("should_")}
        self.trainer.log(values)
        for key, value in flags.items():
            setattr(control, key, value)


def unwrap(model):
    """The module inside DDP / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


class preserved:
    """Context: restore the model's train/eval mode and every RNG state on exit."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.training = self.model.training
        self.states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                       torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        return self

    def __exit__(self, *exc):
        python, numpy_state, cpu, cuda = self.states
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        self.model.train(self.training)


def scalars(run_dir: Path, metrics=("nuclear_norm",)) -> dict[str, float]:
    """{'layergrad/<condition>/nn_early': ..., '.../mad': ...} of one probe run (means over modules)."""
    stats, samples, _ = load_run(run_dir)
    ok = stats[stats.sample_id.isin(samples.sample_id[samples.status == "ok"])]
    out = {}
    if "nuclear_norm" in metrics and not ok.empty:
        for condition, early, middle, late, mad_all, _ in summary_table(ok):
            out[f"layergrad/{condition}/nn_early"] = float(early)
            out[f"layergrad/{condition}/nn_late"] = float(late)
            out[f"layergrad/{condition}/mad"] = float(mad_all)
    return out
