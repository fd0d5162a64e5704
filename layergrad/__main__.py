"""``python -m layergrad`` (also what ``torchrun -m layergrad`` runs)."""

from layergrad.cli import entry

entry()
