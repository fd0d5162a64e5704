"""One registry type for every extension point: statistics, claim kinds, caveats, studies.

A registry maps names to entries. Registering a taken name is refused (``replace=True`` says it is meant);
looking up an unknown name is a one-line ``InputError`` that lists the valid ones. The built-in entries of
a registry are registered by their own modules, named in ``plugins`` and imported on the first lookup (as
entry points are): a registry declared low in the package can hold entries defined higher up.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterator

from layergrad.errors import InputError, LayergradError, did_you_mean


class TakenName(LayergradError):
    """A name registered twice without ``replace=True``."""


class Registry:
    """Named entries of one kind (``what``: 'claim kind', 'caveat', ...), in registration order."""

    def __init__(self, what: str, plugins: tuple[str, ...] = ()):
        self.what, self.plugins = what, plugins
        self._entries: dict[str, object] = {}
        self._loaded = not plugins

    def register(self, name: str, entry, *, replace: bool = False):
        """Add ``entry`` under ``name`` and return it; a taken name is refused unless ``replace``."""
        if not name or not isinstance(name, str):
            raise TakenName(f"a {self.what} needs a name (a non-empty string), got {name!r}")
        if name in self._entries and not replace:
            raise TakenName(f"{self.what} '{name}' is already registered; choose another name "
                            "(or pass replace=True to replace it)")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, make: Callable | None = None, *, replace: bool = False):
        """``@registry.decorator(name)``: registers the function (or ``make(function)``) and returns the function."""
        def wrap(function):
            self.register(name, make(function) if make else function, replace=replace)
            return function
        return wrap

    def remove(self, name: str) -> None:
        """Take ``name`` out (a plugin's tests register and remove their own entries)."""
        self._entries.pop(name, None)

    def get(self, name: str):
        """The entry of ``name``; an unknown name is a one-line InputError listing the valid ones."""
        self.load()
        if name not in self._entries:
            raise InputError(f"unknown {self.what} '{name}'.{did_you_mean(str(name), self._entries)} "
                             f"Valid: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        self.load()
        return list(self._entries)

    def items(self):
        self.load()
        return list(self._entries.items())

    def __contains__(self, name) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def load(self) -> None:
        """Import the modules that register the built-in entries (once)."""
        if not self._loaded:
            self._loaded = True
            for module in self.plugins:
                importlib.import_module(module)
