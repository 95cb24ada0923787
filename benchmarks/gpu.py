"""GPU training throughput: SK-Prefix, SK-Prompt, PEFT prefix / prompt tuning and LoRA on a randomly
initialised ~1B-parameter Llama in bf16 (no download), same batch, sequence length and head.

Prints tokens per second, model FLOPs utilisation and peak GPU memory per method; finishes in under
5 minutes on one H100.

    python benchmarks/gpu.py                       # on a GPU machine
    python benchmarks/gpu.py --tiny --steps 2      # the same code path on a CPU, in seconds

MFU uses the PaLM convention, (6 N + 12 L d S) FLOPs per token over the GPU's dense bf16 peak
(989 TFLOP/s for an H100 SXM). With a frozen backbone no weight gradients are computed, so the
work actually done is nearer (4 N + 12 L d S); both are printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import peft
import torch
import transformers as tf

from common import PeftWithHead

from sktuning import SKModel, SKTuningConfig

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
TEXT_TOKENS = 16


def llama_config(tiny: bool) -> tf.LlamaConfig:
    if tiny:
        return tf.LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2)
    # Llama-3.2-1B's shape with a 32k vocabulary: 1.1B parameters
    return tf.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                          num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a tiny model (checks the script on a CPU)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tf.logging.set_verbosity_error()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    torch.manual_seed(0)
    config = llama_config(args.tiny)
    started = time.perf_counter()
    with torch.device(device):
        backbone = tf.LlamaModel(config).to(dtype).eval()
    n_params = sum(p.numel() for p in backbone.parameters())
    batch, seq = args.batch_size, args.seq_len
    gen = torch.Generator().manual_seed(0)
    data = {"input_ids": torch.randint(3, config.vocab_size, (batch, seq), generator=gen).to(device),
            "attention_mask": torch.ones(batch, seq, dtype=torch.long, device=device),
            "labels": torch.randint(0, 2, (batch,), generator=gen).to(device)}
    text_ids = torch.randint(3, config.vocab_size, (TEXT_TOKENS,), generator=gen)
    features = peft.TaskType.FEATURE_EXTRACTION

    def sk(mode):
        model = SKModel(backbone, SKTuningConfig(mode=mode, text="t", adapter="lowrank"), text_ids)
        return model, lambda: model(**data).loss

    def peft_model(cfg):
        model = PeftWithHead(backbone, cfg)
        return model, lambda: model(**data)

    methods = {
        "SK-Prefix (lowrank)": lambda: sk("prefix"),
        "SK-Prompt (lowrank)": lambda: sk("prompt"),
        "PEFT prefix tuning": lambda: peft_model(peft.PrefixTuningConfig(task_type=features,
                                                                         num_virtual_tokens=TEXT_TOKENS)),
        "PEFT prompt tuning": lambda: peft_model(peft.PromptTuningConfig(task_type=features,
                                                                         num_virtual_tokens=TEXT_TOKENS)),
        "PEFT LoRA r=8 (q,k,v,o)": lambda: peft_model(peft.LoraConfig(
            task_type=features, r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    }
    layers, hidden = config.num_hidden_layers, config.hidden_size
    results = []
    for label, build in methods.items():  # LoRA last: it edits the backbone's modules in place
        model, step = build()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = step()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        tokens = batch * seq / seconds
        palm = (6 * n_params + 12 * layers * hidden * seq) * tokens / 1e12
        frozen = (4 * n_params + 12 * layers * hidden * seq) * tokens / 1e12
        results.append({"method": label, "trainable": sum(p.numel() for p in params), "step_s": seconds,
                        "tokens_per_s": tokens, "tflops_palm": palm, "tflops_frozen": frozen,
                        "mfu_palm": palm / peak if peak else None, "mfu_frozen": frozen / peak if peak else None,
                        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None})
        del model, step, opt, params
    print(f"# device: {name}; {n_params / 1e9:.2f}B-parameter random Llama ({layers} layers, hidden {hidden}), "
          f"{dtype} weights, bf16 autocast; batch {batch} x {seq} tokens; {TEXT_TOKENS} text / virtual tokens; "
          f"median of {args.steps} steps after {args.warmup}; torch {torch.__version__}, transformers "
          f"{tf.__version__}, peft {peft.__version__}; seed 0; total {time.perf_counter() - started:.0f} s")
    print("\n| method | trainable | step (s) | tokens/s | MFU (6N) | MFU (4N, frozen) | peak memory (GiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in results:
        print(f"| {r['method']} | {r['trainable']:,d} | {r['step_s']:.3f} | {r['tokens_per_s']:,.0f} | "
              f"{fmt(r['mfu_palm'], '.1%')} | {fmt(r['mfu_frozen'], '.1%')} | {fmt(r['peak_memory_gib'], '.1f')} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"device": name, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
