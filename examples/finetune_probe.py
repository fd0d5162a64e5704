"""Fine-tune SmolLM2-135M-Instruct on the paper's GSM8K Detailed CoT and watch the layers.

    python examples/finetune_probe.py --out runs/finetune
    layergrad analyze runs/finetune/probes/step-* --out runs/finetune/over-steps --over-steps

A few dozen optimiser steps of plain SFT (AdamW, loss on the response tokens only) on a CPU; every
``--every`` steps LayerGradCallback probes None and Detailed CoT responses, correct and irrelevant,
of held-out GSM8K problems. The second command draws docs/figures/finetune-over-steps.png.
"""

import argparse

import torch
from transformers import Trainer, TrainingArguments

import layergrad
from layergrad.data.formatting import Formatter


class SFTData(torch.utils.data.Dataset):
    """Chat-formatted samples, loss on the response (and end-of-turn) tokens only, padded per batch."""

    def __init__(self, samples, tokenizer, max_length: int):
        formatter = Formatter(tokenizer, chat=True, max_length=max_length)
        self.rows = []
        for s in samples:
            enc = formatter.encode(s)
            if enc.n_response == 0:  # the prompt fills max_length: nothing to learn
                continue
            ids = list(enc.input_ids)
            self.rows.append((ids, [-100] * enc.n_prompt + ids[enc.n_prompt:]))
        self.pad = tokenizer.pad_token_id

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def collate(self, batch):
        longest = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), longest), self.pad)
        labels = torch.full((len(batch), longest), -100)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, (i, lab) in enumerate(batch):
            ids[row, :len(i)], labels[row, :len(lab)], mask[row, :len(i)] = torch.tensor(i), torch.tensor(lab), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--paper-data", default=None, help="a local copy (default: $LAYERGRAD_PAPER_DATA or a checksummed download)")
    parser.add_argument("--out", default="runs/finetune")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--train", type=int, default=32, help="training problems (Detailed CoT)")
    parser.add_argument("--probe", type=int, default=3, help="held-out problems per probe condition")
    parser.add_argument("--max-length", type=int, default=384)
    args = parser.parse_args()

    m = layergrad.load_model("smollm2-135m-instruct")
    detailed = layergrad.load_samples("paper:gsm8k/detailed", paper_data=args.paper_data)
    train = detailed[:args.train]
    held_out = slice(len(detailed) - args.probe, len(detailed))  # problems the model never trains on
    probe = {f"{style}{variant}": layergrad.load_samples(f"paper:gsm8k/{style}{variant}",
                                                         paper_data=args.paper_data)[held_out]
             for style in ("none", "detailed") for variant in ("", "@irrelevant")}

    data = SFTData(train, m.tokenizer, args.max_length)
    m.model.train()
    trainer = Trainer(model=m.model, processing_class=m.tokenizer, train_dataset=data, data_collator=data.collate,
                      args=TrainingArguments(output_dir=f"{args.out}/trainer", max_steps=args.steps,
                                             per_device_train_batch_size=2, learning_rate=2e-5, warmup_steps=2,
                                             logging_steps=4, report_to=[], save_strategy="no", seed=0,
                                             use_cpu=True, disable_tqdm=True))
    layergrad.LayerGradCallback(probe, every=args.every, out=f"{args.out}/probes",
                                max_length=args.max_length).attach(trainer)
    trainer.train()
    for entry in trainer.state.log_history:
        if "loss" in entry or "layergrad/detailed/nn_early" in entry:
            print({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in entry.items()})


if __name__ == "__main__":
    main()
