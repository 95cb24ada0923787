"""One benchmark run: a method, a learning rate and a seed, trained by sktuning's one training loop.

Each run trains in its own subprocess (`python -m sktuning.bench.runner SPEC`), so its peak memory
(max RSS) is its own. What the benchmark does differently from `sktune train` is set explicitly on
the loop: torch's AdamW default weight decay (0.01), the "stream" data order, the global seed set
before the model is built, evaluation in batches of 64, no files written. So every committed
number reproduces bit for bit from the raw runs' settings.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sktuning.bench.settings import BenchSettings

#: torch.optim.AdamW's default, which every committed benchmark run trained with
BENCH_WEIGHT_DECAY = 0.01


def run_one(settings: BenchSettings, method: str, lr: float, seed: int) -> dict[str, Any]:
    import torch

    from sktuning.bench.baselines import build_method
    from sktuning.bench.settings import unrelated_text_ids
    from sktuning.config import task_config
    from sktuning.data.encoding import InputEncoder
    from sktuning.metrics import compute_metrics
    from sktuning.version import code_version, cpu_model
    from sktuning.zoo import load_backbone, model_path
    from sktuning.special_tokens import tokenize_text
    from sktuning.training.loop import Trainer, TrainingArguments

    if settings.threads:
        torch.set_num_threads(settings.threads)
    data = settings.load_data()
    backbone, tokenizer = load_backbone(settings.model)
    text_ids = tokenize_text(tokenizer, data.default_text)
    config = task_config(data, tokenizer)
    if method == "sk-prefix-unrelated":  # the same token count, none of the task's meaning
        text_ids = unrelated_text_ids(tokenizer, len(text_ids))
        config = dataclasses.replace(config, text=tokenizer.decode(text_ids))
    torch.manual_seed(seed)  # the model's initial values come from the seed
    model = build_method(method, backbone, text_ids, config, tokenizer_path=model_path(settings.model))
    encoder = InputEncoder(tokenizer, text_ids, data.task, settings.max_length)

    def rows(split: str, limit: int) -> list[dict]:
        dataset = data.splits[split]
        if limit < len(dataset):  # the same subset for every method and seed
            dataset = dataset.shuffle(seed=0).select(range(limit))
        return encoder.encode(dataset, split)

    train, val, test = rows("train", settings.max_train), rows("validation", settings.max_eval), \
        rows("test", settings.max_test)
    args = TrainingArguments(output_dir=None, steps=settings.steps, batch_size=settings.batch_size,
                             eval_batch_size=64, learning_rate=lr, weight_decay=BENCH_WEIGHT_DECAY,
                             warmup_ratio=settings.warmup_ratio, max_grad_norm=1.0, eval_every=settings.eval_every,
                             seed=seed, progress=False, data_order="stream", seed_at_start=False,
                             group_by_length=bool(settings.group_by_length))
    trainer = Trainer(model, encoder, train, val, data.metrics, data.label_names, args)
    state = trainer.train()
    metric = data.metrics[0]
    curve = [(h["step"], h["validation"][metric]) for h in state.history]
    total = sum(p.numel() for p in model.parameters())
    predictions, references, _ = trainer.predict(test)
    return {"method": method, "lr": lr, "seed": seed, "curve": curve,
            "best_validation": state.best_metric if state.best_metric is not None else float("-inf"),
            "test": compute_metrics(data.metrics, predictions, references, data.label_names), "metric": metric,
            "trainable": sum(p.numel() for p in trainer.params), "total": total,
            "step_seconds": statistics.median(trainer.step_seconds),  # the median: robust to a stall of the machine
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # what later statistics pair examples by, and what the result came from
            "test_predictions": predictions, "test_references": references, "text": config.text, "text_ids": text_ids,
            "code": code_version(), "padding_side": getattr(tokenizer, "padding_side", None),
            "dtype": str(next(backbone.parameters()).dtype).removeprefix("torch."), "cpu": cpu_model(),
            "threads": torch.get_num_threads()}


def run_in_subprocess(settings: BenchSettings, method: str, lr: float, seed: int) -> dict[str, Any]:
    """`run_one` in a fresh Python process (its peak memory its own); the record with its wall time."""
    spec = json.dumps({"settings": asdict(settings), "method": method, "lr": lr, "seed": seed})
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sktuning.bench.runner", spec], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} lr={lr} seed={seed} failed:\n{result.stderr[-3000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record.update(settings=asdict(settings), seconds=round(time.perf_counter() - started, 1))
    return record


def append_record(log: Path, record: dict[str, Any]) -> None:
    """Keep a finished run (JSON lines), so a rerun of the suite skips it."""
    cut = log.exists() and log.stat().st_size > 0 and not log.read_bytes().endswith(b"\n")
    with log.open("a", encoding="utf-8") as handle:
        # a line cut short by a crash must not swallow this one too
        handle.write(("\n" if cut else "") + json.dumps(record) + "\n")


def subprocess_run(settings: BenchSettings, method: str, lr: float, seed: int, log: Path) -> dict[str, Any]:
    """`run_one` in a subprocess; its record is appended to `log` as soon as it finishes."""
    record = run_in_subprocess(settings, method, lr, seed)
    append_record(log, record)
    return record


if __name__ == "__main__":  # one run, for Suite's subprocesses
    import warnings

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()
    spec = json.loads(sys.argv[1])
    print(json.dumps(run_one(BenchSettings(**spec["settings"]), spec["method"], spec["lr"], spec["seed"])))
