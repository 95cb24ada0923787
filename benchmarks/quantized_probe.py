"""Which quantized backbones SK-Tuning can train through on this machine: a tiny Llama quantized by
bitsandbytes (8-bit, NF4) through transformers' BitsAndBytesConfig and by torchao (int8 and int4
weight-only), then ten AdamW steps of SK-Prefix and SK-Prompt on two examples. Prints, per scheme and
mode, OK with the first and last loss, or the error.

    pip install bitsandbytes==0.50.2 torchao==0.18.0
    python benchmarks/quantized_probe.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import padded_batch, tiny_backbone, tiny_tokenizer  # noqa: E402

from sktuning import SKTuningConfig, get_sk_model  # noqa: E402


def bnb(config):
    def load(folder):
        return tf.AutoModel.from_pretrained(folder, quantization_config=config, device_map="cpu")
    return load


def torchao(name: str, **kwargs):
    def load(folder):
        from torchao import quantization

        model = tf.AutoModel.from_pretrained(folder)
        quantization.quantize_(model, getattr(quantization, name)(**kwargs))
        return model
    return load


SCHEMES = {
    "bitsandbytes int8": bnb(tf.BitsAndBytesConfig(load_in_8bit=True)),
    "bitsandbytes nf4": bnb(tf.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                  bnb_4bit_compute_dtype=torch.float32)),
    "torchao int8 weight-only": torchao("Int8WeightOnlyConfig"),
    "torchao int4 weight-only": torchao("Int4WeightOnlyConfig", group_size=32),
}


def main() -> None:
    folder = tempfile.mkdtemp()
    tiny_backbone("llama").save_pretrained(folder)
    tokenizer = tiny_tokenizer()
    for scheme, load in SCHEMES.items():
        for mode in ("prefix", "prompt"):
            try:
                model = get_sk_model(load(folder), tokenizer, SKTuningConfig(mode=mode, text="w5 w6", num_labels=2))
                ids, mask, _ = padded_batch([6, 4], "left")
                optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
                losses = []
                for _ in range(10):
                    loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1])).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    losses.append(loss.item())
                print(f"{scheme:26s} {mode:6s} OK: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
            except Exception as err:  # noqa: BLE001 - the point is to record what fails, and how
                print(f"{scheme:26s} {mode:6s} FAILED: {type(err).__name__}: {str(err)[:160]}")


if __name__ == "__main__":
    main()
