"""The statistics of a gradient's singular values: one registry entry each.

An entry is a name, a formula over the spectrum, an axis label, a unit, which direction is "more"
and, where the original code wrote it, its key there. The registry feeds everything that lists
statistics: the columns of ``stats.parquet`` (in registry order), ``SpectrumStats``, the original
code's JSONL (export and import), the CLI help of ``analyze`` and the figure labels. A new statistic
is one call::

    layergrad.register_statistic("top5_share", lambda s: s.sigma[:, :5].sum(-1) / s.nuclear,
                                 label="share of ‖G‖* in σ1..σ5", unit="share", more="more concentrated")

A formula maps a ``Spectrum`` (K gradients at once, torch tensors, fp64) to K values. Formulas that
read only ``nuclear``, ``sigma_max``, ``frobenius_sq`` and ``sigma_min`` can also be evaluated on
imported files that carry no singular values (``Spectrum.from_scalars``); the others are NaN there.
No torch import at module level: the CLI lists the registry without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from layergrad.errors import InputError


@dataclass(frozen=True)
class Statistic:
    """One statistic of a spectrum σ1 ≥ σ2 ≥ ... ≥ 0 of a weight gradient G."""

    name: str
    formula: Callable  # Spectrum -> (K,) tensor
    label: str  # axis label
    unit: str  # 'gradient' (the gradient's own units), 'count', 'share' or 'ratio'
    more: str  # what a larger value means
    original: str | None = None  # its key in the original code's JSONL, when it wrote it


STATISTICS: dict[str, Statistic] = {}


def register_statistic(name: str, formula: Callable, *, label: str, unit: str, more: str,
                       original: str | None = None, replace: bool = False) -> Statistic:
    """Add a statistic to every table and listing from now on (computed for runs started after).

    Args:
        name: Its column name (an identifier).
        formula: ``Spectrum -> (K,) tensor``: reads ``sigma``, ``nuclear``, ``sigma_max``, ``frobenius_sq``, ...
        label: The axis label of its figures.
        unit: ``gradient``, ``count``, ``share`` or ``ratio``.
        more: What a larger value means (for the report's wording).
        original: Its key in the original code's JSONL, if it wrote it.
        replace: Replace a statistic of the same name (else a taken name is refused).

    Returns:
        The registered ``Statistic``.
    """
    if not name.isidentifier():
        raise InputError(f"a statistic's name must be an identifier (letters, digits, _), got {name!r}")
    if name in STATISTICS and not replace:
        from layergrad.registry import TakenName

        raise TakenName(f"statistic '{name}' is already registered; choose another name (or pass replace=True to "
                        "replace it)")
    entry = Statistic(name, formula, label, unit, more, original)
    STATISTICS[name] = entry
    return entry


def names() -> tuple[str, ...]:
    return tuple(STATISTICS)


def label(name: str) -> str:
    entry = STATISTICS.get(name)
    return entry.label if entry else name.replace("_", " ")


class MissingSpectrum(Exception):
    """Raised by ``Spectrum.sigma`` when only scalar summaries are known (an imported file)."""


class Spectrum:
    """K spectra at once: σ² rows (K, m), descending, fp64; or only their scalar summaries.

    ``n_full`` = min(p, d) of the weight: ``sigma_min`` is σ_n of the full matrix, 0 when rank < n.
    """

    def __init__(self, squared, n_full: int):
        self.squared = squared.clamp_min(0)
        self.n_full = n_full
        self._scalars: dict = {}

    @classmethod
    def from_scalars(cls, **values) -> "Spectrum":
        """nuclear, sigma_max, frobenius_sq, sigma_min as (K,) tensors (a file without S_list)."""
        out = cls.__new__(cls)
        out.squared, out.n_full, out._scalars = None, None, values
        return out

    @property
    def sigma(self):
        if self.squared is None:
            raise MissingSpectrum
        return self.squared.sqrt()

    def _get(self, key: str, compute):
        if key not in self._scalars:
            self._scalars[key] = compute()
        return self._scalars[key]

    @property
    def nuclear(self):
        return self._get("nuclear", lambda: self.sigma.sum(-1))

    @property
    def sigma_max(self):
        return self._get("sigma_max", lambda: self.sigma[..., 0])

    @property
    def frobenius_sq(self):
        return self._get("frobenius_sq", lambda: self.squared.sum(-1))

    @property
    def sigma_min(self):
        def smallest():
            if self.squared.shape[-1] >= self.n_full:
                return self.sigma[..., self.n_full - 1]
            return self.sigma_max * 0  # rank < n: exactly 0
        return self._get("sigma_min", smallest)


def ratio(a, b):
    """a / b, and 0 where b is 0 (the original's ZeroDivisionError rule)."""
    positive = b > 0
    return (a / b.where(positive, b.new_ones(()))).where(positive, b.new_zeros(()))


def effective_rank(s: Spectrum):
    """exp of the entropy of p_i = σ_i / Σσ (the follow-up paper's erank); 0 for a zero gradient."""
    p = s.sigma / s.nuclear.where(s.nuclear > 0, s.nuclear.new_ones(())).unsqueeze(-1)
    entropy = -(p * p.where(p > 0, p.new_ones(())).log()).sum(-1)
    return entropy.exp().where(s.nuclear > 0, s.nuclear.new_zeros(()))


def evaluate(spectrum: Spectrum):
    """(K, n_statistics) fp64 tensor in registry order; NaN where a formula needs the missing σ."""
    import torch

    columns = []
    for entry in STATISTICS.values():
        try:
            columns.append(entry.formula(spectrum).double())
        except MissingSpectrum:
            k = len(next(iter(spectrum._scalars.values())))
            columns.append(torch.full((k,), math.nan, dtype=torch.float64))
    return torch.stack(columns, dim=-1)


class SpectrumStats:
    """Every registered statistic of one spectrum, as attributes (``.nuclear_norm``) and ``[name]``."""

    def __init__(self, values: dict[str, float]):
        self.values = values

    def __getattr__(self, name: str) -> float:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def __repr__(self) -> str:
        return "SpectrumStats(" + ", ".join(f"{k}={v:.6g}" for k, v in self.values.items()) + ")"


def spectrum_stats(sigma, n_full: int | None = None) -> SpectrumStats:
    """Statistics of one vector of singular values (any order)."""
    sigma = sigma.double().sort(descending=True).values
    row = evaluate(Spectrum((sigma**2).unsqueeze(0), n_full if n_full is not None else sigma.numel()))[0].tolist()
    return SpectrumStats({k: float(v) if math.isfinite(v) else math.nan for k, v in zip(names(), row)})


register_statistic("nuclear_norm", lambda s: s.nuclear, label="nuclear norm ‖G‖*", unit="gradient",
                   more="a larger gradient (summed over all its directions)", original="S_sum")
register_statistic("sigma_max", lambda s: s.sigma_max, label="σ1", unit="gradient",
                   more="a larger step along the gradient's main direction", original="S_max")
register_statistic("sigma1_ratio", lambda s: ratio(s.sigma_max, s.nuclear), label="σ1 ratio σ1/‖G‖*",
                   unit="share", more="more of the gradient in one direction (a less spread spectrum)")
register_statistic("frobenius_norm", lambda s: s.frobenius_sq.sqrt(), label="Frobenius norm ‖G‖F",
                   unit="gradient", more="a larger gradient", original="frobenius_norm")
register_statistic("effective_rank", effective_rank, label="effective rank", unit="count",
                   more="a gradient spread over more directions")
register_statistic("stable_rank", lambda s: ratio(s.frobenius_sq, s.sigma_max**2), label="stable rank ‖G‖F²/σ1²",
                   unit="count", more="a gradient spread over more directions")
register_statistic("sigma_min", lambda s: s.sigma_min, label="σn (0 when rank < n)", unit="gradient",
                   more="a full-rank gradient with a larger smallest direction", original="S_min")
