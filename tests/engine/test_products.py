"""The linear layers' kernels: the products and gradients of fp64, planned, and the model left as it was."""

import pytest
import torch
import torch.nn.functional as F
from test_compute import SAMPLES, assert_matches_oracle

import layergrad
from layergrad.engine import plan, products, threads
from layergrad.engine.losses import response_losses

KERNELS = [k for k in products.kernels() if k != "torch"]


def layer_inputs(rows=70, d_in=48, d_out=9000, seed=0):
    """A product wider than one numpy block (4096 features) and not a multiple of it."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, rows, d_in, generator=g), torch.randn(d_out, d_in, generator=g) * 0.05,
            torch.randn(d_out, generator=g), torch.randn(2, rows, d_out, generator=g))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_each_kernel_gives_the_products_of_fp64(kernel, with_bias):
    """fp32 products of 48 (forward) and 9,000 (backward) terms: within 1e-5 of each fp64 product's
    largest entry (absolute: entries near 0)."""
    x, w, b, grad = layer_inputs()
    x.requires_grad_(True)
    y = products.PlannedProduct.apply(x, w, b if with_bias else None, kernel)
    (input_grad,) = torch.autograd.grad(y, x, grad)
    want_y = x.detach().double() @ w.double().T + (b.double() if with_bias else 0)
    want_grad = grad.double() @ w.double()
    assert y.shape == (2, 70, 9000) and input_grad.shape == x.shape
    torch.testing.assert_close(y.double(), want_y, rtol=0, atol=1e-5 * want_y.abs().max().item())
    torch.testing.assert_close(input_grad.double(), want_grad, rtol=0, atol=1e-5 * want_grad.abs().max().item())


def test_numpy_kernel_does_not_depend_on_the_threads():
    """Fixed blocks of output features, one thread per call, summed in block order: spread over two
    workers or all on one thread, the numbers are equal bit for bit (by construction: the same one-thread
    BLAS calls on the same blocks, whichever thread makes them)."""
    x, w, _, grad = layer_inputs()
    budget = threads.budget()
    results = []
    try:
        for n in (2, 1):
            threads.set_budget(n)
            with threads.numpy_single_threaded():
                results.append((products.numpy_forward(x, w), products.numpy_input_grad(grad, w)))
    finally:
        threads.set_budget(budget)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", ["tiny-random-llama", "tiny-random-qwen2"])  # qwen2: q/k/v with a bias
def test_a_run_under_each_kernel_matches_the_fp64_oracle(tiny, kernel, name, monkeypatch):
    m = tiny(name)
    calls = []
    forward, backward = products.PRODUCTS[kernel]
    monkeypatch.setitem(products.PRODUCTS, kernel, (lambda *a: calls.append("forward") or forward(*a),
                                                    lambda *a: calls.append("backward") or backward(*a)))
    with plan.forced_products(kernel):
        frame = layergrad.compute(m, SAMPLES, batch_size=2)
    layers = len(products.plain_linears(m.model.requires_grad_(False)))
    m.model.requires_grad_(True)
    assert calls.count("forward") == 3 * layers and calls.count("backward") > 0  # 5 samples in batches of 2
    assert_matches_oracle(m, frame, SAMPLES)
    assert not any("forward" in vars(mod) for mod in m.model.modules())  # the model's own forwards again


def test_the_forwards_are_restored_after_an_error(tiny):
    model = tiny("tiny-random-llama").model.requires_grad_(False)  # frozen, as in a run
    layers = products.plain_linears(model)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with products.planned_products(model, dict.fromkeys(layers, "numpy")):
                assert all("forward" in vars(mod) for mod in layers)
                raise RuntimeError("boom")
    finally:
        model.requires_grad_(True)
    assert layers and not any("forward" in vars(mod) for mod in layers)


def test_only_plain_frozen_fp32_linear_layers_are_replaced():
    class Adapter(torch.nn.Linear):
        pass

    assert products.plain_linear(torch.nn.Linear(8, 40).requires_grad_(False))  # a bias is fine
    assert not products.plain_linear(torch.nn.Linear(8, 40))  # trained
    assert not products.plain_linear(torch.nn.Linear(8, 40).requires_grad_(False).to(torch.bfloat16))
    assert not products.plain_linear(Adapter(8, 40).requires_grad_(False))  # a subclass has its own forward
    patched = torch.nn.Linear(8, 40).requires_grad_(False)
    patched.forward = lambda x: x  # someone else's hook (accelerate, a profiler)
    assert not products.plain_linear(patched)


def test_small_products_keep_torch_and_rules_mode_never_times(monkeypatch):
    assert plan.product_kernel(plan.PRODUCT_ROWS[0] - 1, 576, 49152) == "torch"
    assert plan.product_kernel(500, 64, 400) == plan.product_kernel(5000, 64, 400) == "torch"  # a tiny model's
    monkeypatch.setenv("LAYERGRAD_PLAN", "rules")
    monkeypatch.setattr(plan.kernels, "time_product", lambda *a: pytest.fail("timed under LAYERGRAD_PLAN=rules"))
    assert plan.product_kernel(500, 576, 49152) == "torch"


def test_product_timing_is_cached_and_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERGRAD_PLAN_FILE", str(tmp_path / "plan.json"))
    monkeypatch.setattr(plan.STATE, "memo", {})
    entry = plan.kernels.time_product(64, 64, 5000)
    assert set(entry["ms"]) == set(products.kernels()) and entry["choice"] in entry["ms"]
    calls = []
    monkeypatch.setattr(plan.kernels, "time_product", lambda *a: calls.append(a) or entry)
    first = plan.product_kernel(100, 512, 8192)
    assert plan.product_kernel(120, 512, 8192) == first and calls == [(128, 512, 8192)]
    assert plan.used("cpu", [])["products"] == {plan.product_key(128, 512, 8192, threads.budget()): entry}


def test_tune_prints_each_shape_per_row_bucket(monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERGRAD_PLAN_FILE", str(tmp_path / "plan.json"))
    monkeypatch.setattr(plan.STATE, "memo", {})
    monkeypatch.setattr(plan.kernels, "time_product", lambda rows, d_in, d_out: {"choice": "numpy", "rows": rows,
                                                                         "ms": {"torch": 2.0, "numpy": 1.0}})
    model = torch.nn.Sequential()
    model.add_module("up_proj", torch.nn.Linear(512, 8192, bias=False))
    model.add_module("tiny", torch.nn.Linear(8, 8))
    lines = plan.tune_products(model, [40, 100, 300, 2048])
    assert [line.split(",")[1].strip() for line in lines] == ["65-128 rows", "257+ rows"] * 2
    assert lines[0].startswith("linear 512->8192 (up_proj)")
    assert all(": numpy  [ms forward + backward at" in line and "numpy 1.00, torch 2.00" in line and
               line.endswith("(timed now)") for line in lines[:2])
    assert all(": torch  [below" in line for line in lines[2:])
    monkeypatch.setattr(plan.STATE, "memo", {})
    assert plan.tune_products(model, [100, 300])[0].endswith("(cached)")


def test_the_loss_may_write_its_gradient_over_the_logits():
    """``reuse_logits``: the same loss and the same gradient, bit for bit, written into the logits' storage."""
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 17, 101)
    ids = torch.randint(0, 101, (2, 17))
    scored = torch.rand(2, 16) > 0.4
    scored[:, 3] = True
    results = []
    for reuse in (False, True):
        x = logits.clone().requires_grad_(True)
        y = x * 1  # a non-leaf: the head's output in a run
        y.retain_grad()
        loss = response_losses(y, ids, scored, reuse_logits=reuse)
        loss.sum().backward()
        results.append((loss.detach(), y.grad, y.detach().clone()))
    (loss_a, grad_a, _), (loss_b, grad_b, storage_b) = results
    # by construction: the same forward, and the same elementwise sub/exp kernels over the same shape in place
    # or not (the split between vectorised body and scalar tail depends on the size, never the address)
    assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)
    assert torch.equal(storage_b, grad_b)  # the gradient lives where the logits were
    assert F.cross_entropy(logits[0, :-1][scored[0]], ids[0, 1:][scored[0]]).item() == pytest.approx(
        loss_a[0].item(), rel=1e-6)
