"""What measuring every expert costs on a MoE model: layergrad's seconds per sample against a training step.

    python benchmarks/moe_cost.py [--n 6] [--rounds 3] [--paper-data ../shared/paper-data]

A random Qwen3-MoE-shaped model (hidden 512, 8 layers, 32 experts of width 256, 4 per token, GQA), the paper's
GSM8K samples (Detailed CoT, tokenised by the tiny built-in tokenizer), one sample at a time. Timed, alternating
in one process, medians over rounds:

- ``train``: a fine-tuning step (forward + backward, every weight getting its gradient; transformers' own experts
  kernel), plain transformers (baselines.py);
- ``attn``: ``layergrad.compute(modules='attn')`` — the attention only, the experts running their own kernel;
- ``all``: ``layergrad.compute()`` — every linear map, each of the 8 x 32 x 2 expert matrices one by one, the
  routers and the per-layer summaries.

Printed: seconds per sample and each against the training step; the CPU model.
"""

import argparse
import json
import statistics
import time

import torch
from baselines import training_steps  # beside this file: plain transformers only

import layergrad
from layergrad.engine.compute import make_formatter
from layergrad.engine.options import ComputeOptions
from layergrad.engine.plan import cpu_name
from layergrad.models import LoadedModel
from layergrad.tiny import tiny_tokenizer

SHAPE = dict(hidden_size=512, intermediate_size=1024, moe_intermediate_size=256, num_hidden_layers=8,
             num_attention_heads=8, num_key_value_heads=2, head_dim=64, num_experts=32, num_experts_per_tok=4,
             decoder_sparse_step=1, mlp_only_layers=[], max_position_embeddings=4096, tie_word_embeddings=False)


def moe_model() -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer(chat=True)
    config = AutoConfig.for_model("qwen3_moe", vocab_size=len(tok), eos_token_id=tok.eos_token_id, **SHAPE)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return LoadedModel(model, tok, "random-qwen3-moe", True, {"alias": "random-qwen3-moe"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paper-data", default=None)
    args = parser.parse_args()
    m = moe_model()
    samples = layergrad.load_samples("paper:gsm8k/detailed", limit=args.n, paper_data=args.paper_data)
    encoded = [make_formatter(m, ComputeOptions()).encode(s) for s in samples]
    steps = [(e.input_ids, e.n_prompt) for e in encoded]
    layergrad.compute(m, samples[:1])  # warm-up: the kernel plan of these shapes is timed here, not below
    times: dict[str, list[float]] = {"train": [], "attn": [], "all": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        training_steps(m.model, steps)
        times["train"].append((time.perf_counter() - start) / len(samples))
        for name, modules in (("attn", "attn"), ("all", None)):
            start = time.perf_counter()
            layergrad.compute(m, samples, modules=modules)
            times[name].append((time.perf_counter() - start) / len(samples))
    median = {k: statistics.median(v) for k, v in times.items()}
    tokens = statistics.mean(e.n_tokens for e in encoded)
    print(json.dumps({"cpu": cpu_name(), "torch": torch.__version__,
                      "tokens_per_sample": round(tokens), "seconds_per_sample": median,
                      "vs_train": {k: v / median["train"] for k, v in median.items()}}, indent=1))


if __name__ == "__main__":
    main()
