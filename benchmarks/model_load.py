"""Second-load time of each built-in alias (target: < 10 s), each in a fresh process.

    python benchmarks/model_load.py

The first load (package install + GGUF dequantization) is done by `layergrad models fetch`
beforehand and timed too when the converted copy is missing.
"""

import subprocess
import sys
import time

from layergrad.models import ALIASES, alias_status, converted_alias

LOAD = "import time, layergrad; t = time.perf_counter(); layergrad.load_model({!r}, log=lambda *a: None); " \
       "print(time.perf_counter() - t)"


def main():
    print(f"{'alias':24s} {'first load s':>12s} {'second load s':>14s}  (in-process load time, fresh process)")
    for name in ALIASES:
        first = "cached"
        if alias_status(name) != "cached":
            start = time.perf_counter()
            converted_alias(name, log=lambda *a: None)
            first = f"{time.perf_counter() - start:.1f}"
        out = subprocess.run([sys.executable, "-c", LOAD.format(name)], capture_output=True, text=True, check=True)
        second = float(out.stdout.strip().splitlines()[-1])
        print(f"{name:24s} {first:>12s} {second:14.1f}  {'ok' if second < 10 else 'SLOW'}")


if __name__ == "__main__":
    main()
