"""Seeded tiny random models of real architectures, for tests and quick trials (no download).

The tokenizer is a byte-level BPE trained in milliseconds on a fixed built-in text, so it
merges across word boundaries like a real one; chat variants carry a ChatML template.
"""

from __future__ import annotations

import functools

import torch

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """The quick brown fox jumps over the lazy dog. A farmer has 12 apples and buys 7 more.
How many apples does she have now? She has 12 + 7 = 19 apples. The final answer is 19.
Tell me about the history of the city. It was founded in 1820 near the river, and grew quickly.
Knitting for a long time can lead to what condition? Options: sore hands, relaxation.
Let's think step by step. First, we compute the total cost: 3 * 4 = 12 dollars.
Then we subtract the discount of 2 dollars, so 12 - 2 = 10. Therefore the answer is 10.
"""


@functools.lru_cache(maxsize=None)
def _trained_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([_CORPUS] * 4, trainer)
    return tok.to_str()


def tiny_tokenizer(chat: bool = True):
    """A fresh PreTrainedTokenizerFast with ChatML (chat) or none (base)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json()),
                                  bos_token="<|endoftext|>", eos_token="<|im_end|>" if chat else "<|endoftext|>",
                                  pad_token="<|endoftext|>")
    if chat:
        tok.chat_template = CHATML
    return tok


def tiny_config(name: str, vocab: int, bos: int | None = None, eos: int | None = None):
    """The config of a tiny model of one architecture (few layers, 64 wide, GQA where it exists)."""
    from transformers import GPT2Config, LlamaConfig, MixtralConfig, Phi3Config, Qwen2Config

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  tie_word_embeddings=False)
    if name == "tiny-random-llama":
        return LlamaConfig(**common)
    if name == "tiny-random-qwen2":
        return Qwen2Config(**common)
    if name == "tiny-random-phi3":
        return Phi3Config(**{**common, "pad_token_id": 0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                             "attention_dropout": 0.0})
    if name == "tiny-random-gpt2":
        return GPT2Config(vocab_size=vocab, n_embd=64, n_layer=3, n_head=4, n_positions=1024,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=bos, eos_token_id=eos)
    if name == "tiny-random-mixtral":  # a MoE: 8 experts, 2 per token
        return MixtralConfig(**common, num_local_experts=8, num_experts_per_tok=2)
    raise KeyError(name)


def tiny_model(name: str, seed: int = 0):
    """(model, tokenizer) with weights drawn from ``seed``: the same numbers on every machine."""
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer(chat=name != "tiny-random-gpt2")
    config = tiny_config(name, len(tok), tok.bos_token_id, tok.eos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model, tok


ADAPTERS = {"tiny-lora": "tiny-random-llama"}  # adapter alias -> the tiny model it was built on


def tiny_adapter(name: str, folder) -> str:
    """A saved PEFT LoRA adapter for a tiny model (``ADAPTERS``: rank 4 on q_proj and v_proj, both factors drawn
    from seed 1, so neither gradient is 0), written into ``folder`` once; its path."""
    from pathlib import Path

    from peft import LoraConfig, get_peft_model

    folder = Path(folder)
    if (folder / "adapter_model.safetensors").is_file():
        return str(folder)
    model, _ = tiny_model(ADAPTERS[name])
    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return str(folder)
