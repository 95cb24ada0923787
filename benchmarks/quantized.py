"""SK-Tuning on a frozen backbone held in 32, 8 or 4 bits: memory, step time and test accuracy.

Each scheme trains the same run (`sktune train`, same task, text, steps, batch, rate and seed) in its
own process; peak memory is that process's maximum resident set (wait4), step time is the training
loop's own clock (evaluation excluded), accuracy is on the task's test split with a 95% normal
interval over its examples. The backbone's own footprint (`get_memory_footprint`) is read apart.

    python benchmarks/quantized.py                                 # SmolLM2-135M, rt-polarity, 200 steps
    python benchmarks/quantized.py --mode prompt --schemes none nf4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as tf

from sktuning.sharing.zoo import load_backbone


def footprint_mib(model: str, scheme: str | None) -> float:
    backbone, _ = load_backbone(model, quantize=scheme)
    return backbone.get_memory_footprint() / 2 ** 20


def train(args, scheme: str | None, output: Path) -> dict:
    command = [sys.executable, "-m", "sktuning.cli", "train", "--model", args.model, "--task", args.task,
               "--mode", args.mode, "--steps", str(args.steps), "--seed", str(args.seed), "--output", str(output),
               "--quiet", *(["--quantize", scheme] if scheme else []), *args.extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-2000:]}")
    metrics = json.loads((output / "metrics.json").read_text())
    return {"peak_mib": usage.ru_maxrss / 1024, "wall": time.perf_counter() - started, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="rt-polarity")
    parser.add_argument("--mode", default="prefix", choices=["prefix", "prompt"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemes", nargs="+", default=["none", "int8", "nf4"], choices=["none", "int8", "nf4"])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more sktune train options")
    args = parser.parse_args()
    import bitsandbytes

    print(f"# {args.model}, {args.task}, SK-{args.mode.capitalize()} (lowrank), {args.steps} steps, seed {args.seed}; "
          f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; torch {torch.__version__}, "
          f"transformers {tf.__version__}, bitsandbytes {bitsandbytes.__version__}; {time.strftime('%Y-%m-%d')}")
    print("\n| backbone | weights (MiB) | peak RSS of the run (MiB) | s per step | test accuracy (95% CI) | "
          "best validation |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in args.schemes:
            quantize = None if scheme == "none" else scheme
            weights = footprint_mib(args.model, quantize)
            r = train(args, quantize, Path(tmp) / scheme)
            accuracy = r["metrics"]["accuracy"]
            n = r.get("test_examples") or _test_size(args.task)
            half = 1.96 * math.sqrt(accuracy * (1 - accuracy) / n)
            print(f"| {'fp32' if scheme == 'none' else scheme} | {weights:.0f} | {r['peak_mib']:.0f} | "
                  f"{r['train_seconds'] / r['steps']:.2f} | {accuracy:.3f} ({accuracy - half:.3f}-{accuracy + half:.3f}) "
                  f"| {r['best_validation']:.3f} |", flush=True)


def _test_size(task: str) -> int:
    from sktuning.data import load_task

    return len(load_task(task).splits["test"])


if __name__ == "__main__":
    main()
