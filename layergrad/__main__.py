"""``python -m layergrad`` (also what ``torchrun -m layergrad`` runs)."""

from .cli import entry

entry()
