"""Does the machine change the numbers? A few training steps of `sktune train`'s model (SK-Prefix,
the demo's text, seed 0, batches of 16 rt-polarity reviews), printing every loss to 10 digits.

Run it twice and compare the lines: with another thread count, or with torch's kernels for another
instruction set (`ATEN_CPU_CAPABILITY=avx2` on an AVX-512 machine), as a machine with another CPU
would run them:

    python benchmarks/numerics.py --threads 1
    python benchmarks/numerics.py --threads 2
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/numerics.py --threads 2
"""

from __future__ import annotations

import argparse

import torch

from common import quiet_cpu_setup

from sktuning.core.config import task_config
from sktuning.core.tasks import task_named
from sktuning.data.encoding import InputEncoder
from sktuning.data.registry import load_task
from sktuning.core.model import SKModel
from sktuning.core.special_tokens import tokenize_text
from sktuning.core.version import cpu_model
from sktuning.sharing.zoo import load_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="named model or local folder")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    quiet_cpu_setup(args.threads)
    data = load_task("rt-polarity")
    backbone, tokenizer = load_backbone(args.model)
    text_ids = tokenize_text(tokenizer, data.default_text)
    torch.manual_seed(0)
    model = SKModel(backbone, task_config(data, tokenizer), text_ids).train()
    encoder = InputEncoder(tokenizer, text_ids, task_named(data.task), 128)
    rows = encoder.encode(data.splits["train"].select(range(16 * args.steps)), "train")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    print(f"# {cpu_model()}, torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    for step in range(args.steps):
        batch = encoder.collate(rows[16 * step:16 * (step + 1)])
        batch.pop("word_ids", None)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"step {step} loss {loss.item():.10f}", flush=True)


if __name__ == "__main__":
    main()
