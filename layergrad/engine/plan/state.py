"""The kernel plan's state in this process, held by one object: what it has read or timed, and the choices
forced on it (tests, benchmarks). Every other module of the plan is stateless."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class PlanState:
    """The plan of this process: entries by (machine, section, key), recipes chosen, step timings, locks."""

    memo: dict = field(default_factory=dict)  # (machine, section, key) -> entry read or timed
    recipes: dict = field(default_factory=dict)  # (machine, t, p, d, sharing) -> the recipe chosen
    steps: dict = field(default_factory=dict)  # (step, *sizes) -> {candidate: ms}
    forced_recipes: list = field(default_factory=list)  # forced(recipe): every cell takes the last
    forced_products: list = field(default_factory=list)  # forced_products(kernel): every plain linear takes the last
    file_locks: dict = field(default_factory=dict)  # cache path -> its FileLock (one per path: re-entrant)
    machine_keys: dict = field(default_factory=dict)  # kernel settings -> the machine key (cache.machine_key)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def forget(self, machine: str) -> None:
        """Drop what this process read or timed for ``machine``."""
        with self.lock:
            for key in [k for k in self.memo if k[0] == machine]:
                del self.memo[key]
            self.steps.clear()
            self.recipes.clear()


STATE = PlanState()


@contextmanager
def pushed(stack: list, value):
    """``value`` on top of ``stack`` in the body."""
    stack.append(value)
    try:
        yield
    finally:
        stack.pop()
