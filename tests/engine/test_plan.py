"""The kernel plan: every candidate gives the fp64 answer; timed once per machine, cached, recorded."""

import json

import pytest
import torch

from layergrad.cli import main
from layergrad.engine import plan, solvers, spectra, statistics
from layergrad.engine.spectra import Recipe

STATS = ("nuclear_norm", "sigma_max", "sigma1_ratio", "frobenius_norm", "effective_rank", "stable_rank")
CANDIDATES = plan.candidates()


def factors(t, p, d, seed=0, silent=0):
    """Random X, Δ with a spread of scales over positions, as real gradients have; the last ``silent``
    positions reach no scored token (Δ is zero there, X is not)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, t, d, generator=g)
    delta = torch.randn(1, t, p, generator=g) * torch.logspace(0, -4, t).view(1, t, 1)
    if silent:
        delta[:, t - silent:] = 0
    return x, delta


@pytest.mark.parametrize("t,p,d,silent", [(40, 64, 48, 0), (100, 96, 48, 0), (12, 80, 40, 0), (60, 30, 90, 0),
                                          (7, 7, 7, 0), (40, 64, 48, 3), (12, 80, 40, 2)])
def test_every_candidate_gives_the_fp64_statistics(t, p, d, silent):
    """Acceptance: each statistic within 2e-5 of an fp64 SVD of the materialised gradient under every
    candidate of the plan (σ_min, which can be rounding noise, absolutely at 1e-6 of σ1)."""
    x, delta = factors(t, p, d, silent=silent)
    want = statistics.evaluate(statistics.Spectrum(spectra.reference_singular_values(x[0], delta[0])[None] ** 2,
                                                   min(p, d)))[0]
    names = statistics.names()
    for recipe in CANDIDATES:
        sq = solvers.eigenvalues(spectra.gram_matrix(x, delta, recipe), recipe.solver)
        got = statistics.evaluate(statistics.Spectrum(sq, min(p, d)))[0]
        for name in STATS:
            i = names.index(name)
            assert abs(got[i] - want[i]) <= 2e-5 * abs(want[i]), (recipe, name, got[i].item(), want[i].item())
        i = names.index("sigma_min")
        assert abs(got[i] - want[i]) <= 1e-6 * want[names.index("sigma_max")], recipe


def test_a_forced_recipe_runs_through_compute(tiny):
    """The engine honours the plan: every candidate in a real (tiny) run gives the same table to 2e-5."""
    import layergrad

    m = tiny("tiny-random-llama")
    samples = layergrad.load_samples("builtin:arith/detailed?n=2")
    with plan.forced(Recipe("core", "x", "qr")):
        want = layergrad.compute(m, samples, modules="all")
    for recipe in CANDIDATES:
        with plan.forced(recipe):
            got = layergrad.compute(m, samples, modules="all")
        for name in ("nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"):
            assert ((got[name] - want[name]).abs() <= 2e-5 * want[name].abs()).all(), (recipe, name)


@pytest.fixture
def fresh_plan(tmp_path, monkeypatch):
    """An empty cache and memo, and a count of the timings made."""
    monkeypatch.setenv("LAYERGRAD_PLAN_FILE", str(tmp_path / "plan.json"))
    monkeypatch.delenv("LAYERGRAD_PLAN", raising=False)
    new_process(monkeypatch)
    timed = []
    real = plan.timing.best_ms
    monkeypatch.setattr(plan.timing, "best_ms",
                        lambda candidates, *a: timed.append(tuple(candidates)) or real(candidates, *a))
    return timed, tmp_path / "plan.json"


def new_process(monkeypatch):
    for memo in ("memo", "steps", "recipes"):
        monkeypatch.setattr(plan.STATE, memo, {})


def test_a_cell_is_timed_once_then_read_from_the_cache(fresh_plan, monkeypatch):
    timed, path = fresh_plan
    first = plan.recipe(100, 96, 48, sharing=3)
    assert timed and path.exists()
    cells = json.loads(path.read_text())[plan.machine_key()]["cells"]
    assert plan.around(100) == (91, 128)  # timed at the grid points around T, interpolated between them
    for g in (91, 128):
        assert set(cells[plan.cell_key(g, 96, 48, 3)]["variants"]) >= {"core R_X·Δ", "core R_Δ·X", "dense G"}
    count = len(timed)
    plan.recipe(110, 96, 48, sharing=3)  # between the same grid points: nothing timed
    assert len(timed) == count
    new_process(monkeypatch)  # read from the file, not timed again
    assert plan.recipe(100, 96, 48, sharing=3) == first and len(timed) == count


@pytest.mark.parametrize("damage", ["delete", "corrupt", "wrong shape"])
def test_a_deleted_or_corrupt_cache_is_timed_again_never_an_error(fresh_plan, monkeypatch, damage):
    timed, path = fresh_plan
    plan.recipe(100, 96, 48)
    new_process(monkeypatch)
    if damage == "delete":
        path.unlink()
    else:
        path.write_text("{not json" if damage == "corrupt" else "[1, 2]")
    count = len(timed)
    plan.recipe(100, 96, 48)
    assert len(timed) > count and json.loads(path.read_text())[plan.machine_key()]["cells"]


def test_inside_a_run_a_missing_cell_takes_the_rule_without_timing(fresh_plan):
    timed, path = fresh_plan
    got = plan.recipe(100, 96, 48, timing=False)
    assert got == spectra.rule_recipe(100, 96, 48) and not timed and not path.exists()


def test_rules_mode_never_times(fresh_plan, monkeypatch):
    timed, path = fresh_plan
    monkeypatch.setenv("LAYERGRAD_PLAN", "rules")
    assert plan.recipe(100, 96, 48) == spectra.rule_recipe(100, 96, 48) and not timed and not path.exists()


def test_a_candidate_replaces_the_default_only_when_clearly_faster():
    assert plan.pick({"plain": 10.0, "blocked": 9.5}, "plain") == "plain"
    assert plan.pick({"plain": 10.0, "blocked": 8.0}, "plain") == "blocked"
    assert plan.pick({"plain": 8.0, "blocked": 10.0}, "plain") == "plain"


def test_sizes_are_planned_on_a_half_octave_grid():
    assert [plan.bucket(n) for n in (1, 32, 33, 45, 46, 91, 92, 256, 257, 362, 363)] == \
        [32, 32, 45, 45, 64, 91, 128, 256, 362, 362, 512]
    assert 256 < plan.representative(362) <= 362
    assert plan.around(512) == (512, 512) and plan.around(523) == (512, 724) and plan.around(40) == (32, 45)


def test_run_json_records_the_plan_and_tune_prints_it(fresh_plan, tmp_path, capsys):
    timed, _ = fresh_plan
    out = tmp_path / "run"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--data", "a=builtin:arith/detailed?n=2",
                 "--out", str(out)]) == 0
    used = json.loads((out / "run.json").read_text())["plan"]
    assert used["machine"] == plan.machine_key() and used["cells"]
    capsys.readouterr()
    assert main(["tune", "--model", "tiny-random-llama", "--lengths", "40,100"]) == 0
    text = capsys.readouterr().out
    assert plan.cpu_name() in text and "T=40 " in text and "T=100 " in text and "ms at T=100" in text
    count = len(timed)
    assert main(["tune", "--model", "tiny-random-llama", "--lengths", "40,100"]) == 0  # cached: nothing timed
    assert len(timed) == count and "(cached)" in capsys.readouterr().out
