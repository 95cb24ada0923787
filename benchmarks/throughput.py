"""Training and scoring throughput against this machine's own matrix-product rate, measured side by side.

The limit: a frozen backbone's forward pass costs 2 FLOPs per weight of its matrix products per token,
and a training step twice that (forward, then the gradients of the activations; a frozen backbone
needs no weight gradients). Attention's own products and the elementwise work are left out of the
count, so they show as the gap to 100 %. The rate is an fp32 2048^3 matrix product timed in this
process, with this process's threads, just before the model runs.

    python benchmarks/throughput.py                    # SmolLM2-135M, rt-polarity, SK-Prefix lowrank
    python benchmarks/throughput.py --steps 12 --score 400 --model minilm-l6

Rows: training with random batches (padded to their longest) and with length-grouped ones (what
`sktune train` does by default); scoring as the validation pass runs it (merged, length-sorted) at
several batch sizes, and unmerged for comparison. Every rate counts real (non-padding) tokens.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import transformers

from sktuning.core.config import task_config
from sktuning.data.encoding import InputEncoder
from sktuning.data.registry import load_data
from sktuning.core.model import get_sk_model
from sktuning.training.loop import Trainer, TrainingArguments
from sktuning.sharing.zoo import load_backbone


def gemm_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """The fp32 matrix-product rate of this process (its threads), median of repeated products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size ** 3 / statistics.median(times) / 1e9


def matmul_weights(backbone: torch.nn.Module) -> int:
    """Weights that take part in matrix products per token (linear layers; not the embedding lookup)."""
    return sum(m.weight.numel() for m in backbone.modules() if isinstance(m, torch.nn.Linear))


def training_rate(model, encoder, rows, steps: int, batch_size: int, group: bool) -> dict:
    """Real and padded tokens per second over `steps` timed steps (one untimed warm-up step first)."""
    args = TrainingArguments(output_dir=None, steps=steps + 1, batch_size=batch_size, learning_rate=1e-3,
                             eval_every=10 ** 9, save_every=10 ** 9, progress=False, seed=0,
                             group_by_length=group)
    snapshot = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    trainer = Trainer(model, encoder, rows, [], ["accuracy"], None, args)
    trainer.train()
    model.load_trainable_state_dict(snapshot)  # every row starts from the same model
    real = padded = examples = 0
    for step in range(1, steps + 1):
        batch = [rows[i] for i in trainer.batch_indices(step)]
        lengths = [len(r["input_ids"]) for r in batch]
        real, padded, examples = real + sum(lengths), padded + max(lengths) * len(lengths), examples + len(batch)
    seconds = sum(trainer.step_seconds[1:])
    return {"examples": examples, "real": real, "padded": padded, "seconds": seconds}


def scoring_rate(model, encoder, rows, batch_size: int, merged: bool) -> dict:
    args = TrainingArguments(output_dir=None, steps=1, eval_batch_size=batch_size, progress=False)
    trainer = Trainer(model, encoder, rows, [], ["accuracy"], None, args)
    if not merged:  # Trainer.predict merges an SK model; score it unmerged by hand
        from sktuning.inference.prediction import predict_rows

        trainer.predict = lambda r: predict_rows(model, encoder, r, batch_size)
    trainer.predict(rows[:batch_size])  # warm-up
    started = time.perf_counter()
    trainer.predict(rows)
    seconds = time.perf_counter() - started
    ordered = sorted(len(r["input_ids"]) for r in rows)
    padded = sum(max(ordered[k:k + batch_size]) * len(ordered[k:k + batch_size])
                 for k in range(0, len(ordered), batch_size))
    return {"examples": len(rows), "real": sum(ordered), "padded": padded, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="rt-polarity")
    parser.add_argument("--mode", default="prefix")
    parser.add_argument("--adapter", default="lowrank")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per row")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--score", type=int, default=1000, help="validation texts scored per row")
    parser.add_argument("--score-batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--attention", choices=["sdpa", "eager"], default=None,
                        help="the backbone's attention implementation (default: transformers' choice, SDPA)")
    parser.add_argument("--profile", action="store_true",
                        help="also print torch.profiler's top operators of one training step, random vs grouped")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()

    backbone, tokenizer = load_backbone(args.model)
    if args.attention:
        backbone.set_attn_implementation(args.attention)
    data = load_data(args.task)
    torch.manual_seed(0)
    model = get_sk_model(backbone, tokenizer, task_config(data, tokenizer, mode=args.mode, adapter=args.adapter))
    encoder = InputEncoder.for_model(model, tokenizer)
    train = encoder.encode(data.splits["train"], "train")
    validation = encoder.encode(data.splits["validation"].select(range(min(args.score, len(data.splits["validation"])))),
                                "validation")
    per_token = 2 * matmul_weights(model.backbone) / 1e9  # GFLOP per token, forward
    mean_tokens = statistics.mean(len(r["input_ids"]) for r in train)

    gemm = gemm_gflops()
    rows = []
    for group in (False, True):
        r = training_rate(model, encoder, train, args.steps, args.batch_size, group)
        rows.append((f"training, batch {args.batch_size}, " + ("length-grouped" if group else "random batches"),
                     r, 2 * per_token))
    for batch_size in args.score_batch_sizes:
        rows.append((f"scoring, batch {batch_size}, merged, length-sorted",
                     scoring_rate(model, encoder, validation, batch_size, merged=True), per_token))
    rows.append((f"scoring, batch {args.score_batch_sizes[0]}, unmerged, length-sorted",
                 scoring_rate(model, encoder, validation, args.score_batch_sizes[0], merged=False), per_token))
    gemm_after = gemm_gflops()
    rate = max(gemm, gemm_after)  # the machine's rate drifts; the higher reading gives the stricter percentage

    print(f"{args.model} on {args.task}, SK-{args.mode} ({args.adapter}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, {platform.processor() or platform.machine()}")
    print(f"matrix-product rate (fp32 2048^3): {gemm:.1f} GFLOP/s before, {gemm_after:.1f} after, the higher one "
          f"counts; "
          f"{per_token:.3f} GFLOP per token forward; {mean_tokens:.1f} tokens per training text")
    print(f"limit: {rate / (2 * per_token * mean_tokens):.1f} training and {rate / (per_token * mean_tokens):.1f} "
          "scoring examples/s on an average text\n")
    print(f"attention: {backbone.config._attn_implementation}\n")
    print("| path | examples/s | real tokens/s | padded tokens/s | padding | % of limit (real tokens) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r, cost in rows:
        seconds = r["seconds"]
        print(f"| {name} | {r['examples'] / seconds:.1f} | {r['real'] / seconds:.0f} | {r['padded'] / seconds:.0f} | "
              f"{r['padded'] / r['real']:.2f}x | {100 * cost * r['real'] / seconds / rate:.0f} % |")



    if args.profile:
        for group in (False, True):
            profile_step(model, encoder, train, args.batch_size, group)


def profile_step(model, encoder, rows, batch_size: int, group: bool) -> None:
    """torch.profiler's operators of one training step (after a warm-up step), by their own time."""
    from torch.profiler import ProfilerActivity, profile

    args = TrainingArguments(output_dir=None, steps=1, batch_size=batch_size, progress=False, group_by_length=group)
    trainer = Trainer(model, encoder, rows, [], ["accuracy"], None, args)
    batch = encoder.collate([rows[i] for i in trainer.batch_indices(0)])
    batch.pop("word_ids", None)
    model.train()

    def step():
        model(**batch).loss.backward()
        model.zero_grad(set_to_none=True)

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f"\none training step, batch {tuple(batch['input_ids'].shape)}, "
          f"{int(batch['attention_mask'].sum())} real tokens ({'length-grouped' if group else 'random'}):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
