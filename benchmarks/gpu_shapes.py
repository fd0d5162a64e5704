"""GPU table: per-sample time and peak memory of the original algorithm, a training step and
layergrad (every solver backend) on randomly initialised models of
real shapes; the error against fp64; bf16 weights and TF32 deviations.

    PYTHONPATH=. python3 benchmarks/gpu_shapes.py --out results.jsonl            # the README table
    python benchmarks/gpu_shapes.py --shapes tiny --lengths 64 --n 2 --device cpu  # smoke test

Random weights time exactly like trained ones (no downloads, no ``gguf``). Each sample has a
128-token prompt (masked) and T tokens in all; samples of one length are batched by a token
budget that fills the GPU, and the training step runs the same batches (every weight gets its
gradient). The original algorithm (full backward + full SVD of q/k/v/o, batch of one) is timed
on one sample where that is affordable, otherwise from one backward and one SVD of each
distinct weight shape (``--original extrapolate``). Every result is also a JSON line in
``--out``, written as it comes, so a run cut short keeps what it measured. Stages stop being
started once ``--budget-s`` seconds have passed.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import layergrad  # noqa: E402
from layergrad.data.samples import Sample  # noqa: E402
from layergrad.engine import solvers  # noqa: E402
from layergrad.engine.batching import Item, pad_batch, plan_batches  # noqa: E402
from layergrad.engine.compute import make_formatter  # noqa: E402
from layergrad.engine.options import ComputeOptions  # noqa: E402
from layergrad.engine.original import original_record  # noqa: E402
from layergrad.models import LoadedModel  # noqa: E402
from layergrad.tiny import tiny_tokenizer  # noqa: E402

SHAPES = {
    "qwen2-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096,
                       rope_theta=1e6, tie_word_embeddings=True),
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         max_position_embeddings=4096, rope_theta=5e5),
    "tiny": dict(model_type="llama", hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=4096, max_position_embeddings=2048),
}
BATCH_TOKENS = {"qwen2-1.5b": 8192, "llama-3.1-8b": 2048, "tiny": 512}
PROMPT = 128
# The error check against fp64 SVDs of materialised gradients: every kind in three layers, or (8B, where
# fp64 SVDs of 4096x14336 gradients would take minutes) the attention projections of layer 0.
CHECK_MODULES = {"llama-3.1-8b": r"re:layers\.0\.self_attn\.(k|v|q)_proj"}
CHECK_DEFAULT = r"re:layers\.(0|1|13)\."


class Bench:
    """Runs stages against a deadline and records every result as a JSON line."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.deadline, self.rows = out, time.perf_counter() + budget_s, []

    def time_left(self) -> bool:
        return time.perf_counter() < self.deadline

    def record(self, **row) -> None:
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        with open(self.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def build(shape: str, dtype: str, device: str) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(SHAPES[shape])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    model.eval()
    return LoadedModel(model, tiny_tokenizer(chat=False), shape, False, {"alias": shape})


def samples_of_length(tok, total: int, n: int) -> list[Sample]:
    """n samples whose plain-format text is ``total`` tokens, the first 128 the prompt."""
    words = ("the model reads a long story about numbers and rivers and then writes a careful answer " * 800).split()
    out = []
    for i in range(n):
        ids = tok(" ".join(words[i:i + 4 * total]), add_special_tokens=False)["input_ids"][:total - 2]
        out.append(Sample(tok.decode(ids[:PROMPT - 1]), tok.decode(ids[PROMPT - 1:]), i))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, float]:
    """(seconds, peak GiB) of fn()."""
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fn()
    sync(device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return time.perf_counter() - start, peak


def training(m, batches, device: str) -> None:
    """A fine-tuning forward+backward per batch, every weight getting its gradient (no optimizer)."""
    for p in m.model.parameters():
        p.requires_grad_(True)
    for batch in batches:
        ids, mask, targets = pad_batch(batch, 0, device)
        labels = ids.masked_fill(~torch.nn.functional.pad(targets, (1, 0)), -100)
        m.model(input_ids=ids, attention_mask=mask.long(), labels=labels, use_cache=False).loss.backward()
        m.model.zero_grad(set_to_none=True)
    for p in m.model.parameters():
        p.requires_grad_(False)


def original_exact(m, samples) -> float:
    for s in samples:
        original_record(m.model, m.tokenizer, s.prompt, s.response, chat=False)
    return len(samples)


def original_extrapolated(m, sample, device: str) -> tuple[float, str]:
    """One full backward (q/k/v/o trainable) + one SVD per distinct weight shape, scaled by counts."""
    params = [(n, p) for n, p in m.model.named_parameters()
              if p.ndim > 1 and (p.shape[0] == p.shape[1] or "self_attn" in n)]
    for _, p in params:
        p.requires_grad_(True)
    ids = m.tokenizer(sample.prompt + "\n" + sample.response, return_tensors="pt").input_ids.to(device)
    t_backward, _ = timed(lambda: m.model(ids, labels=ids).loss.backward(), device)
    shapes: dict = {}
    for _, p in params:
        shapes.setdefault(tuple(p.shape), 0)
        shapes[tuple(p.shape)] += 1
    t_svd = 0.0
    for shape, count in shapes.items():
        g = torch.randn(shape, device=device, dtype=next(m.model.parameters()).dtype)
        torch.linalg.svd(g)  # warm-up
        t, _ = timed(lambda: torch.linalg.svd(g), device)
        t_svd += t * count
    m.model.zero_grad(set_to_none=True)
    for _, p in params:
        p.requires_grad_(False)
    detail = ", ".join(f"{c}x{s[0]}x{s[1]}" for s, c in shapes.items())
    return t_backward + t_svd, f"backward {t_backward:.2f} s + SVDs {t_svd:.2f} s ({detail})"


def max_relative_error(m, sample, modules: str) -> float:
    """layergrad (default route and solver) vs the fp64 SVD of the materialised gradient."""
    fast = layergrad.compute(m, [sample], modules=modules).set_index("param").nuclear_norm
    ref = layergrad.compute(m, [sample], modules=modules, route="reference").set_index("param").nuclear_norm
    return float(((fast - ref).abs() / ref).max())


def profile(bench: Bench, m, samples, budget: int, common: dict, solver: str) -> None:
    """Where layergrad's time goes: one compute under torch.profiler, the ops with most device time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    start = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        layergrad.compute(m, samples, batch_tokens=budget, solver=solver)
        sync(common["device_arg"])
    wall = time.perf_counter() - start
    events = prof.key_averages()
    device_total = sum(e.self_device_time_total for e in events) / 1e6
    top = sorted(events, key=lambda e: (e.self_device_time_total, e.self_cpu_time_total), reverse=True)[:15]
    ops = [dict(op=e.key, calls=e.count, self_device_s=round(e.self_device_time_total / 1e6, 4),
                self_cpu_s=round(e.self_cpu_time_total / 1e6, 4)) for e in top]
    info = {k: v for k, v in common.items() if k != "device_arg"}
    bench.record(**info, what="profile", solver=solver, wall_s_per_sample=wall / len(samples),
                 device_busy_s_per_sample=device_total / len(samples), top_ops=ops)


def deviation(a, b) -> float:
    a, b = a.set_index("param").nuclear_norm, b.set_index("param").nuclear_norm
    return float(((a - b).abs() / b.abs()).max())


def run_shape(bench: Bench, shape: str, lengths, args) -> None:
    device = args.device
    m = build(shape, "float32", device)
    fmt = make_formatter(m, ComputeOptions())
    budget = args.batch_tokens or BATCH_TOKENS[shape]
    backends = [s for s in args.backends.split(",") if s != "cupy" or solvers.cupy_available()]
    layergrad.compute(m, samples_of_length(m.tokenizer, 64, 2), batch_tokens=budget)  # warm-up, calibration
    for total in lengths:
        if not bench.time_left():
            bench.record(shape=shape, T=total, skipped="time budget spent")
            continue
        samples = samples_of_length(m.tokenizer, total, args.n)
        items = [Item("b", s, fmt.encode(s)) for s in samples]
        batches = plan_batches(items, batch_tokens=budget)
        common = dict(shape=shape, T=total, batch=len(batches[0]), n=len(samples), device=gpu_name(device))
        t, mem = timed(lambda: training(m, batches, device), device)
        bench.record(**common, what="training", s_per_sample=t / len(samples), peak_gib=mem)
        if total in args.profile and bench.time_left():
            profile(bench, m, samples, budget, {**common, "device_arg": device}, args.profile_solver)
        for solver in backends:
            if not bench.time_left():
                break
            layergrad.compute(m, samples[:2], batch_tokens=budget, solver=solver)  # warm-up this backend
            t, mem = timed(lambda: layergrad.compute(m, samples, batch_tokens=budget, solver=solver), device)
            bench.record(**common, what="layergrad", solver=solver, s_per_sample=t / len(samples), peak_gib=mem)
        auto = layergrad.compute(m, samples[:1], batch_tokens=budget)
        bench.record(**common, what="auto choice", plan=auto.attrs.get("plan", {}), rows=len(auto))
        if bench.time_left():
            bench.record(**common, what="max relative error vs fp64", value=max_relative_error(m, samples[0], CHECK_MODULES.get(shape, CHECK_DEFAULT)),
                         modules=CHECK_MODULES.get(shape, CHECK_DEFAULT))
        if args.original and bench.time_left() and total in args.original_lengths:
            if args.original == "exact":
                t, _ = timed(lambda: original_exact(m, samples[:1]), device)
                bench.record(**common, what="original", s_per_sample=t, method="exact, 1 sample")
            else:
                t, detail = original_extrapolated(m, samples[0], device)
                bench.record(**common, what="original", s_per_sample=t, method=f"extrapolated: {detail}")
        if args.precision and total == args.precision and bench.time_left():
            precision_checks(bench, m, samples[:2], budget, common, device)


def precision_checks(bench: Bench, m, samples, budget: int, common: dict, device: str) -> None:
    """bf16 weights (fp32 spectral work) and TF32 forward/backward, against fp32."""
    base = layergrad.compute(m, samples, batch_tokens=budget)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    tf32 = layergrad.compute(m, samples, batch_tokens=budget)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    bench.record(**common, what="TF32 forward/backward: max relative deviation of nuclear norms", value=deviation(tf32, base))
    m.model.to(torch.bfloat16)
    t, mem = timed(lambda: layergrad.compute(m, samples, batch_tokens=budget), device)
    bf16 = layergrad.compute(m, samples, batch_tokens=budget)
    m.model.to(torch.float32)
    bench.record(**common, what="bf16 weights: max relative deviation of nuclear norms", value=deviation(bf16, base),
                 s_per_sample=t / len(samples), peak_gib=mem)


def gpu_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"


def summary(rows: list[dict]) -> None:
    """The README table: per (shape, T) the training step, the original, the best layergrad run."""
    print(f"\n{'shape':13s} {'T':>5s} {'B':>3s} {'train s':>8s} {'orig s':>8s} {'lg s':>7s} {'best':>13s} "
          f"{'lg/train':>8s} {'orig/lg':>8s} {'GiB tr':>7s} {'GiB lg':>7s} {'max err':>8s}")
    keys = dict.fromkeys((r["shape"], r["T"]) for r in rows if "what" in r)
    for shape, total in keys:
        mine = [r for r in rows if r.get("shape") == shape and r.get("T") == total]
        train = next((r for r in mine if r["what"] == "training"), None)
        runs = [r for r in mine if r["what"] == "layergrad"]
        if not train or not runs:
            continue
        best = min(runs, key=lambda r: r["s_per_sample"])
        orig = next((r["s_per_sample"] for r in mine if r["what"] == "original"), float("nan"))
        err = next((r["value"] for r in mine if r["what"].startswith("max relative error")), float("nan"))
        name = best["solver"]
        print(f"{shape:13s} {total:5d} {best['batch']:3d} {train['s_per_sample']:8.3f} {orig:8.2f} "
              f"{best['s_per_sample']:7.3f} {name:>13s} {best['s_per_sample'] / train['s_per_sample']:7.2f}x "
              f"{orig / best['s_per_sample']:7.1f}x {train['peak_gib']:7.1f} {best['peak_gib']:7.1f} {err:8.1e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="qwen2-1.5b,llama-3.1-8b")
    parser.add_argument("--lengths", default="256,512,1024", help="T for the first shape")
    parser.add_argument("--llama-lengths", default="1024", help="T for llama-3.1-8b")
    parser.add_argument("--n", type=int, default=8, help="samples per length")
    parser.add_argument("--llama-n", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, help="token budget per batch (default: per shape)")
    parser.add_argument("--original", choices=["exact", "extrapolate", ""], default="extrapolate")
    parser.add_argument("--original-lengths", default="512,1024")
    parser.add_argument("--precision", type=int, default=512, help="T of the bf16/TF32 check (0: skip)")
    parser.add_argument("--backends", default="torch,cupy,host", help="solver backends to time")
    parser.add_argument("--profile", default="512", help="T values at which one compute is profiled ('' for none)")
    parser.add_argument("--profile-solver", default="torch", help="solver used in the profiled compute")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--out", default="gpu_shapes.jsonl")
    args = parser.parse_args()
    args.original_lengths = [int(v) for v in args.original_lengths.split(",")]
    args.profile = [int(v) for v in args.profile.split(",") if v]
    bench = Bench(Path(args.out), args.budget_s)
    bench.record(device=gpu_name(args.device), torch=torch.__version__, cupy=solvers.cupy_available())
    for shape in args.shapes.split(","):
        llama = shape == "llama-3.1-8b"
        lengths = [int(v) for v in (args.llama_lengths if llama else args.lengths).split(",")]
        n = args.llama_n if llama else args.n
        run_shape(bench, shape, lengths, argparse.Namespace(**{**vars(args), "n": n}))  # frees its model on return
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    summary(bench.rows)


if __name__ == "__main__":
    main()
