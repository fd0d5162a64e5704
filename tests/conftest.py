import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPER_DATA = Path(os.environ.get("LAYERGRAD_PAPER_DATA") or SHARED / "paper-data")
FOLLOWUP_DATA = Path(os.environ.get("LAYERGRAD_FOLLOWUP_DATA") or SHARED / "followup-data")


def pytest_configure(config):
    """Under pytest-xdist (``-n N``) each worker gets its share of the cores: OMP_NUM_THREADS, which
    torch, layergrad's thread budget and the test's subprocesses all honour. The kernel plan the tests
    time (beside each other, on busy cores) goes to a file of their own, never a user's plan.json."""
    import tempfile

    os.environ.setdefault("LAYERGRAD_PLAN_FILE", str(Path(tempfile.gettempdir()) / f"layergrad-test-plan-{os.getuid()}.json"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        from layergrad.engine.threads import cpu_budget

        share = max(1, cpu_budget() // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


@pytest.fixture(scope="session")
def paper_data():
    if not PAPER_DATA.is_dir():
        pytest.skip("the paper's data is not beside this checkout (../shared/paper-data or $LAYERGRAD_PAPER_DATA)")
    return str(PAPER_DATA)


@pytest.fixture(scope="session")
def followup_data():
    if not (FOLLOWUP_DATA / "SHA256SUMS").is_file():
        pytest.skip("the follow-up's data is not beside this checkout (../shared/followup-data or "
                    "$LAYERGRAD_FOLLOWUP_DATA)")
    return FOLLOWUP_DATA


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
    """A finished run on tiny-random-llama: arithmetic none/detailed, correct and irrelevant, 8 each
    (with the full spectrum and adjacent-layer cosines)."""
    from layergrad.runs.config import RunConfig
    from layergrad.runs.runner import run

    data = {}
    for style in ("none", "detailed"):
        data[style] = f"builtin:arith/{style}?n=8"
        data[f"{style}@irrelevant"] = f"builtin:arith/{style}@irrelevant?n=8"
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run(RunConfig.build(model="tiny-random-llama", data=data, out=str(out), quiet=True, spectrum=True,
                         cosine=True),
               log=lambda *a: None)


@pytest.fixture(scope="session")
def script_report(tmp_path_factory):
    """report.html of a tiny run whose prompts contain <script>console.error(...)</script>."""
    import json

    from layergrad.cli import main

    root = tmp_path_factory.mktemp("script_report")
    rows = [{"instruction": f"<script>console.error('injected {i}')</script> What is {i}+1?", "output": str(i + 1)}
            for i in range(6)]
    (root / "x.json").write_text(json.dumps(rows))
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--data", f"x={root / 'x.json'}",
                 "--data", "y=builtin:arith/none?n=6", "--out", str(root / "run")]) == 0
    assert main(["analyze", str(root / "run"), "--out", str(root / "a"), "--bootstrap", "50", "--metrics",
                 "nuclear_norm", "--formats", "png", "-q"]) == 0
    return root / "a" / "report.html"
