"""One benchmark run: a method, a learning rate and a seed, built by the run pipeline that `sktune train`
uses (`sktuning.training.pipeline`) and trained by sktuning's one training loop.

Each run trains in its own subprocess (`python -m sktuning.bench.runner SPEC`), so its peak memory
(max RSS) is its own. What the benchmark does differently from `sktune train` is set explicitly in its
RunSpec (`run_spec`): torch's AdamW default weight decay (0.01), the "stream" data order, the global
seed set before the model is built, evaluation in batches of 64, no files written. So every committed
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


def run_spec(settings: BenchSettings, method: str, lr: float, seed: int):
    """The run pipeline's description of one benchmark run (`sktuning.training.pipeline`).

    The method's builder decides what trains; the spec's mode and adapter are only the config's defaults.
    Rows: one fixed subset (subset seed 0) for every method and seed; few-shot: each seed its own K-shot
    sample. The loop as every committed run trained: AdamW's default weight decay, the "stream" order, the
    global seed set only before the model is built, evaluation in batches of 64, on the CPU."""
    from sktuning.training.spec import RunSpec

    files = settings.train or settings.test
    columns = {k: getattr(settings, k) for k in ("text_column", "text_pair_column", "label_column", "label_names",
                                                 "task_type") if getattr(settings, k) is not None}
    shots = settings.shots is not None
    return RunSpec(model=settings.model, task=None if files else settings.task, train=settings.train,
                   validation=settings.validation, test=settings.test, **columns, max_length=settings.max_length,
                   device="cpu", head="label-words" if method.endswith("-lw") else "linear", steps=settings.steps,
                   batch_size=settings.batch_size, lr=lr, weight_decay=BENCH_WEIGHT_DECAY,
                   warmup_ratio=settings.warmup_ratio, eval_every=settings.eval_every,
                   group_by_length=bool(settings.group_by_length),
                   max_train_examples=None if shots else settings.max_train,
                   max_eval_examples=None if shots else settings.max_eval, max_test_examples=settings.max_test,
                   shots=settings.shots, subset_seed=seed if shots else 0, seed=seed, threads=settings.threads,
                   data_order="stream", seed_at_start=False, eval_batch_size=64)


def run_one(settings: BenchSettings, method: str, lr: float, seed: int) -> dict[str, Any]:
    from sktuning.bench.baselines import build_method
    from sktuning.bench.settings import random_text_ids, unrelated_text_ids
    from sktuning.core.label_words import tokenize_label_words, tokenize_template
    from sktuning.core.metrics import compute_metrics
    from sktuning.core.special_tokens import tokenize_text
    from sktuning.training.pipeline import build_run
    from sktuning.core.version import code_version, cpu_model
    from sktuning.sharing.zoo import model_path

    made: dict[str, Any] = {}  # what the record names: the text the model reads, its config

    def make_model(backbone, tokenizer, config):
        text_ids = task_ids = tokenize_text(tokenizer, config.text)
        if method.startswith("sk-prefix-unrelated"):  # the same token count, none of the task's meaning
            text_ids = unrelated_text_ids(tokenizer, len(text_ids))
        elif method.startswith("sk-prefix-random-ids"):  # the same length, no words at all
            text_ids = random_text_ids(tokenizer, text_ids, seed)
        if text_ids != task_ids:  # a control: the config names the text it reads
            config = dataclasses.replace(config, text=tokenizer.decode(text_ids))
        head_ids = (tokenize_label_words(tokenizer, config), tokenize_template(tokenizer, config)) \
            if config.head == "label-words" else None
        made.update(text_ids=text_ids, config=config)
        return build_method(method, backbone, text_ids, config, tokenizer_path=model_path(settings.model),
                            head_ids=head_ids)

    run = build_run(run_spec(settings, method, lr, seed), None, make_model)
    data, model, rows, trainer, tokenizer = run.data, run.model, run.rows, run.trainer, run.tokenizer
    config, text_ids = made["config"], made["text_ids"]

    def scored() -> dict[str, Any]:
        predictions, references, _ = trainer.predict(rows["test"])
        return {"test": compute_metrics(data.metrics, predictions, references, data.label_names),
                "test_predictions": predictions, "test_references": references}

    at_steps: dict[str, dict[str, Any]] = {}  # pre-registered steps: the model as it stands there
    steps = sorted(settings.test_steps or [])
    if steps and settings.curve_seeds is not None and seed >= settings.curve_seeds:
        steps = [steps[0], steps[-1]] if steps[0] == 0 else [steps[-1]]  # the curve's middle: first seeds only
    trainer.after_step = lambda step: at_steps.update({str(step): scored()}) if step in steps else None
    if 0 in steps and seed == 0:  # the untrained model: once per method
        trainer.after_step(0)
    state = trainer.train()
    metric = data.metrics[0]
    curve = [(h["step"], h["validation"].get(metric)) for h in state.history]
    total = sum(p.numel() for p in model.parameters())
    if steps:  # the last pre-registered step stands for the run; nothing is chosen on validation
        final = at_steps[str(state.step)] if str(state.step) in at_steps else scored()
    else:
        final = scored()
    best = state.best_metric if state.best_metric is not None else float("-inf")
    return {"method": method, "lr": lr, "seed": seed, "curve": curve, "best_validation": best, **final,
            "test_at_steps": {step: {"test": r["test"], "test_predictions": r["test_predictions"]}
                              for step, r in at_steps.items()} if steps else None,
            "metric": metric, "trainable": sum(p.numel() for p in trainer.params), "total": total,
            "step_seconds": statistics.median(trainer.step_seconds),  # the median: robust to a stall of the machine
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # what later statistics pair examples by, and what the result came from
            "text": config.text, "text_ids": text_ids,
            "train_examples": len(rows["train"]), "validation_examples": len(rows["validation"]),
            "code": code_version(), "padding_side": getattr(tokenizer, "padding_side", None),
            "dtype": str(next(run.backbone.parameters()).dtype).removeprefix("torch."), "cpu": cpu_model(),
            "threads": run.threads}


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
