import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
PAPER_DATA = Path(os.environ.get("LAYERGRAD_PAPER_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "paper-data")


@pytest.fixture(scope="session")
def paper_data():
    if not PAPER_DATA.is_dir():
        pytest.skip("the paper's data is not beside this checkout (../shared/paper-data or $LAYERGRAD_PAPER_DATA)")
    return str(PAPER_DATA)


@pytest.fixture(scope="session")
def tiny():
    """Load a tiny random model by name (cached per session)."""
    import layergrad

    cache = {}

    def get(name="tiny-random-llama"):
        if name not in cache:
            cache[name] = layergrad.load_model(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def smollm2():
    import layergrad

    return layergrad.load_model("smollm2-135m-instruct", log=lambda *a: None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run on tiny-random-llama: arithmetic none/detailed, correct and irrelevant, 8 each."""
    from layergrad.config import RunConfig
    from layergrad.run import run

    data = {}
    for style in ("none", "detailed"):
        data[style] = f"builtin:arith/{style}?n=8"
        data[f"{style}@irrelevant"] = f"builtin:arith/{style}@irrelevant?n=8"
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run(RunConfig(model="tiny-random-llama", data=data, out=str(out), quiet=True, spectrum=True),
               log=lambda *a: None)
