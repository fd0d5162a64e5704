"""The plan's cache: what machine an entry is valid for, the JSON file it lives in (under a file lock), and
``cached_or_timed``, the one way every decision gets its entry (this process, the file, or timed now)."""

from __future__ import annotations

import json
import os
import platform
from contextlib import contextmanager

import numpy as np
import torch

from layergrad.engine.plan.state import STATE

FORMAT = 4  # of the cached entries; part of the machine key, so an older cache is never misread


def timing_enabled() -> bool:
    """False under LAYERGRAD_PLAN=rules (or off, 0): every decision takes its simple default."""
    return os.environ.get("LAYERGRAD_PLAN", "").lower() not in ("rules", "off", "0")


KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def machine_key() -> str:
    """What a plan is valid for: the CPU, the libraries and the kernel settings that pick their code."""
    settings = tuple(os.environ.get(k) for k in KERNEL_SETTINGS)
    if settings not in STATE.machine_keys:
        from layergrad import __version__

        kernels = ",".join(f"{k}={v}" for k, v in zip(KERNEL_SETTINGS, settings) if v)
        STATE.machine_keys[settings] = (f"{cpu_name()}|torch {torch.__version__}|numpy {np.__version__}|layergrad "
                                        f"{__version__} plan {FORMAT}" + (f"|{kernels}" if kernels else ""))
    return STATE.machine_keys[settings]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_path():
    """$LAYERGRAD_PLAN_FILE, else plan.json in layergrad's cache (the test suite keeps its own file, so
    a plan timed beside busy test workers never reaches a user's runs)."""
    from pathlib import Path

    from layergrad.models import cache_dir

    return Path(os.environ["LAYERGRAD_PLAN_FILE"]) if os.environ.get("LAYERGRAD_PLAN_FILE") else cache_dir() / "plan.json"


def cached_or_timed(section: str, key: str, timer, timing: bool = True) -> dict | None:
    """This machine's entry for ``key``: from this process, else from the cache file, else timed now (one
    process at a time, under a file lock) and written back; None when it is missing and ``timing`` is off."""
    memo_key = (machine_key(), section, key)
    with STATE.lock:
        if memo_key in STATE.memo:
            return STATE.memo[memo_key]
        with file_lock() as writable:
            table = load_cache()
            entry = table.get(memo_key[0], {}).get(section, {}).get(key)
            if entry is None:
                if not timing:
                    return None
                entry = timer()
                table = load_cache()  # the timer may have added entries of its own (eigensolvers)
                table.setdefault(memo_key[0], {}).setdefault(section, {})[key] = entry
                if writable:
                    save_cache(table)
        STATE.memo[memo_key] = entry
        return entry


def cached(section: str) -> dict:
    """This machine's entries of one section in the cache file ({key: entry})."""
    return load_cache().get(machine_key(), {}).get(section, {})


@contextmanager
def file_lock():
    """The cache file's lock, re-entrant in this process (a cell's timing asks for eigensolver entries);
    yields whether the cache can be written (a read-only cache: timed for this process only)."""
    from filelock import FileLock

    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = STATE.file_locks.setdefault(str(path), FileLock(str(path) + ".lock"))
        lock.acquire()
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def load_cache() -> dict:
    try:
        table = json.loads(cache_path().read_text())
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError):  # missing or corrupt: timed again
        return {}


def save_cache(table: dict) -> None:
    path = cache_path()
    try:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1, ensure_ascii=False))
        tmp.replace(path)
    except OSError:  # a read-only cache only costs a new timing next time
        pass


def forget(machine: str | None = None) -> None:
    """Drop this machine's plan (``layergrad tune --retime``): from this process and from the cache."""
    machine = machine or machine_key()
    with STATE.lock:
        STATE.forget(machine)
        table = load_cache()
        if table.pop(machine, None) is not None:
            save_cache(table)
