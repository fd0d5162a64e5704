"""Per-sample time and peak memory on a GPU for randomly initialised models of real shapes.

    python benchmarks/gpu_shapes.py [--shapes qwen2-1.5b,llama-3.1-8b] [--lengths 256,512,1024]
                                    [--n 8] [--original-n 1] [--dtype float32]
    python benchmarks/gpu_shapes.py --shapes tiny --device cpu --n 2     # smoke test

Random weights time exactly like trained ones (no downloads). Each sample has a 128-token
prompt (masked) and T tokens in all. Compared in one process on the same samples: the
original algorithm (full backward + full SVD of q/k/v/o), a training forward+backward (all
weights get gradients), and layergrad (all 7 kinds). Targets (issue 6): Qwen2-1.5B shape at
T=512 -> layergrad <= 2x the training step and >= 50x the original's throughput;
Llama-3.1-8B shape at T=1024 -> >= 100x the original; peak memory <= the training step's.
"""

import argparse
import time

import torch
from baselines import training_steps

import layergrad
from layergrad.data.samples import Sample
from layergrad.engine.batching import Item
from layergrad.engine.compute import ComputeOptions, make_formatter
from layergrad.engine.original import original_record
from layergrad.models import LoadedModel
from layergrad.tiny import tiny_tokenizer

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
PROMPT = 128


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
    """n samples whose plain-format text is about ``total`` tokens, the first 128 the prompt."""
    words = ("the model reads a long story about numbers and rivers and then writes a careful answer " * 400).split()
    out = []
    for i in range(n):
        ids = tok(" ".join(words[i:i + 4 * total]), add_special_tokens=False)["input_ids"][:total - 2]
        out.append(Sample(tok.decode(ids[:PROMPT - 1]), tok.decode(ids[PROMPT - 1:]), i))
    return out


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return time.perf_counter() - start, peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="qwen2-1.5b,llama-3.1-8b")
    parser.add_argument("--lengths", default="256,512,1024")
    parser.add_argument("--n", type=int, default=8, help="samples per length (training, layergrad)")
    parser.add_argument("--original-n", type=int, default=1, help="samples for the slow original (0: skip)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.dtype}")
    print(f"{'shape':13s} {'T':>5s} {'train s':>8s} {'orig s':>8s} {'lg s':>7s} {'lg/train':>8s} {'orig/lg':>8s} "
          f"{'GiB train':>9s} {'GiB lg':>7s}")
    for shape in args.shapes.split(","):
        m = build(shape, args.dtype, args.device)
        fmt = make_formatter(m, ComputeOptions())
        layergrad.compute(m, samples_of_length(m.tokenizer, 64, 1))  # warm-up
        for total in map(int, args.lengths.split(",")):
            samples = samples_of_length(m.tokenizer, total, args.n)
            items = [Item("b", s, fmt.encode(s)) for s in samples]
            t_train, mem_train = timed(lambda: training_steps(m, items, args.device), args.device)
            t_lg, mem_lg = timed(lambda: layergrad.compute(m, samples), args.device)
            t_orig = float("nan")
            if args.original_n:
                few = samples[:args.original_n]
                t_orig, _ = timed(lambda: [original_record(m.model, m.tokenizer, s.prompt, s.response, chat=False)
                                           for s in few], args.device)
                t_orig /= len(few)
            t_train, t_lg = t_train / len(items), t_lg / len(items)
            tokens = sum(it.encoded.n_tokens for it in items) / len(items)
            print(f"{shape:13s} {tokens:5.0f} {t_train:8.3f} {t_orig:8.2f} {t_lg:7.3f} {t_lg / t_train:7.2f}x "
                  f"{t_orig / t_lg:7.1f}x {mem_train:9.1f} {mem_lg:7.1f}", flush=True)
        del m
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
