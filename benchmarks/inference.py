"""Serving cost of a merged SK model against the bare backbone and the unmerged model.

Same inputs for all (rt-polarity test snippets, dynamic padding), fp32 CPU, no grad; each variant is
timed round-robin. Batch 1 reports latency, batch 32 throughput.

    python benchmarks/inference.py                 # SmolLM2-135M
    python benchmarks/inference.py --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import transformers as tf
from common import quiet_cpu_setup

from sktuning import SKModel, SKTuningConfig
from sktuning.core.model import tokenize_text
from sktuning.sharing.zoo import load_backbone
from sktuning.data import load_task

TEXT = "Classify the sentiment of this movie review as positive or negative. Review:"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    quiet_cpu_setup(args.threads)
    torch.manual_seed(0)

    backbone, tokenizer = load_backbone(args.model)
    text_ids = tokenize_text(tokenizer, TEXT)
    texts = load_task("rt-polarity").splits["test"]["text"][:64]
    batches = {1: [tokenizer(texts[i:i + 1], return_tensors="pt") for i in range(8)],
               32: [tokenizer(texts[i:i + 32], padding=True, return_tensors="pt") for i in (0, 32)]}

    variants = {"bare backbone": lambda b: backbone(**b).last_hidden_state}
    for mode in ("prefix", "prompt"):
        unmerged = SKModel(backbone, SKTuningConfig(mode=mode, text=TEXT, adapter="lowrank"), text_ids).eval()
        with torch.no_grad():  # a trained adapter: not the identity
            unmerged.semantic.adapter.up.normal_(std=0.01)
        merged = SKModel(backbone, unmerged.sk_config, text_ids).eval()
        merged.load_state_dict(unmerged.trainable_state_dict(), strict=False)
        merged.merge()
        variants[f"SK-{mode.capitalize()} unmerged"] = lambda b, m=unmerged: m(**b).logits
        variants[f"SK-{mode.capitalize()} merged"] = lambda b, m=merged: m(**b).logits

    print(f"# {args.model}; {platform.machine()}, {torch.get_num_threads()} threads; torch {torch.__version__}, "
          f"transformers {tf.__version__}; fp32, no grad; {len(text_ids)} text tokens; median of {args.repeats}; seed 0")
    for size, batch_list in batches.items():
        times = {name: [] for name in variants}
        with torch.no_grad():
            for _ in range(2):  # warm-up
                for fn in variants.values():
                    fn(batch_list[0])
            for _ in range(args.repeats):
                for name, fn in variants.items():
                    start = time.perf_counter()
                    for b in batch_list:
                        fn(b)
                    times[name].append((time.perf_counter() - start) / len(batch_list))
        bare = statistics.median(times["bare backbone"])
        print(f"\n## batch {size}\n")
        print("| variant | latency per batch (ms) | examples/s | vs bare backbone | vs unmerged |")
        print("|---|---:|---:|---:|---:|")
        for name, values in times.items():
            t = statistics.median(values)
            unmerged_name = name.replace("merged", "unmerged") if name.endswith(" merged") else None
            vs_unmerged = f"{t / statistics.median(times[unmerged_name]):.2f}" if unmerged_name else "-"
            print(f"| {name} | {1000 * t:.1f} | {size / t:.1f} | {t / bare:.2f} | {vs_unmerged} |")


if __name__ == "__main__":
    main()
