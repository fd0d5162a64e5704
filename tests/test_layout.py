"""The package layout is the data flow: imports point down the stages only, without circles."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "layergrad"
# shared ground < data, studies < engine < runs < analysis < reproduction, callback, scoring < integrations (other
# tools' pipelines) < cli (top uses bottom)
RANK = {"errors": 0, "registry": 0, "declare": 0, "models": 0, "tiny": 0, "data": 1, "studies": 1, "engine": 2,
        "schema": 2, "runs": 3, "analysis": 4, "reproduction": 5, "callback": 5, "scoring": 5, "integrations": 6,
        "cli": 7, "__main__": 7, "__init__": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every layergrad module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("layergrad"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("layergrad"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_only_point_down_the_stages():
    upward = [(a, b) for a, targets in graph().items() for b in targets  # the root only lends __version__
              if stage(a) != "__init__" and b != "layergrad" and RANK[stage(b)] > RANK[stage(a)]]
    assert not upward, f"imports from a lower stage to a higher one: {upward}"


def test_no_import_circle():
    edges = {a: {b for b in targets if b != "layergrad"} for a, targets in graph().items()}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail(f"import circle: {' -> '.join(path + [nxt])}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_every_module_says_what_it_holds():
    missing = [module_name(p) for p in PACKAGE.rglob("*.py") if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_the_command_line_starts_without_torch():
    code = "import sys, layergrad.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
