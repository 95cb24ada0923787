"""One run pipeline: `sktune train`, every `sktune bench` run and the Python API build their run here,
so they cannot drift apart. A `RunSpec` says what to run; `build_run` goes

    threads -> data -> subsets -> backbone -> config -> seed -> model -> encoder -> Trainer

- threads: from the spec, else torch's own choice (one per core), never a constant;
- rows: the subsets of one rule (`sktuning.data.subsets`) with an explicit subset seed;
- model: `make_model(backbone, tokenizer, config)`, an SKModel by default; the bench passes its own
  builder (LoRA, PEFT's prompt methods, ...), `sktune train` one that also shards;
- the encoder: `InputEncoder.for_model`, the model's own input-length rule, for every model alike;
- the loop: `TrainingArguments` from the spec, the bench's own loop settings included.

What happens after training (test scores, files) is the caller's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from sktuning.core.tasks import task_named
from sktuning.data.encoding import InputEncoder
from sktuning.data.subsets import SubsetRule, draw_subsets
from sktuning.training.spec import AdapterRecord, RunSpec


def set_threads(threads: int | None) -> int:
    """Use `threads` CPU threads (None: leave torch's choice); returns the count in use."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def encode_run(data, model, tokenizer, max_length: int, rule: SubsetRule) -> tuple[InputEncoder, dict[str, list[dict]]]:
    """The encoder of `model` and the train, validation and test rows of `data` that `rule` selects, encoded."""
    encoder = InputEncoder.for_model(model, tokenizer, max_length, task_named(data.task))
    return encoder, {split: encoder.encode(dataset, split) for split, dataset in draw_subsets(data, rule).items()}


def load_run_data(spec: RunSpec):
    """The spec's named task, or its files with their columns (`sktuning.data.registry.load_data`)."""
    from sktuning.data.registry import load_data

    return load_data(spec.task, spec.train, spec.validation, spec.test, text_column=spec.text_column,
                     text_pair_column=spec.text_pair_column, label_column=spec.label_column,
                     label_names=spec.label_names, task_type=spec.task_type)


def run_config(data, tokenizer, spec: RunSpec):
    """The run's SKTuningConfig; with `tokenizer` None (pooling not yet known) it only checks the options."""
    from sktuning.core.config import task_config

    return task_config(data, tokenizer, text=spec.text, pooling=spec.pooling, mode=spec.mode, adapter=spec.adapter,
                       adapter_rank=spec.rank, head=spec.head, label_words=spec.label_words,
                       answer_template=spec.answer_template)


def check_run(spec: RunSpec, data) -> None:
    """Fail on what does not fit the task (a head, label words, --shots a split cannot give) before any model
    loads, so that `sktune train` writes nothing for a run that cannot start."""
    run_config(data, None, spec)
    draw_subsets(data, spec.subset_rule())


def load_run_backbone(spec: RunSpec, device: str):
    """The spec's backbone and tokenizer on `device` (with its LM head for head='label-words')."""
    import torch

    from sktuning.sharing.zoo import load_backbone

    backbone, tokenizer = load_backbone(spec.model, dtype=getattr(torch, spec.dtype), quantize=spec.quantize,
                                        trust_remote_code=spec.trust_remote_code, device=device,
                                        lm_head=spec.head == "label-words")
    if spec.gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return (backbone if spec.quantize else backbone.to(device)), tokenizer  # a quantized model cannot move


def sk_model(backbone, tokenizer, config):
    """The default model: SK-Tuning's own (`get_sk_model`)."""
    from sktuning.core.model import get_sk_model

    return get_sk_model(backbone, tokenizer, config)


@dataclass
class Run:
    """A run ready to train (`run.trainer.train()`), and what its caller reports from."""

    spec: RunSpec              # as run: steps set, max_length as the model's input-length rule left it
    data: Any                  # the TaskData
    backbone: Any
    tokenizer: Any
    config: Any                # the SKTuningConfig the model was built from
    model: Any
    encoder: InputEncoder
    rows: dict[str, list[dict]]  # train, validation, test: encoded
    trainer: Any
    threads: int               # torch's CPU threads in use
    record: AdapterRecord | None  # what is saved with the adapter, its max_length the run's


def build_run(spec: RunSpec, data=None, make_model: Callable = sk_model, *, device: str | None = None,
              output: str | None = None, progress: bool = False, record: AdapterRecord | None = None) -> Run:
    """Everything up to the first training step (see the module's docstring).

    `data`: the spec's data if already loaded (`load_run_data`). `device`: where the backbone loads (default:
    the spec's). `output`: the loop's folder for checkpoints and best/ (None: nothing is written). `record`:
    saved beside every adapter the loop writes."""
    import torch

    from sktuning.scale.runtime import device_for
    from sktuning.training.loop import Trainer, TrainingArguments

    threads = set_threads(spec.threads)
    data = load_run_data(spec) if data is None else data
    backbone, tokenizer = load_run_backbone(spec, device or device_for(spec.device))
    config = run_config(data, tokenizer, spec)
    torch.manual_seed(spec.seed)  # the adapter's and head's initial values come from the seed too
    model = make_model(backbone, tokenizer, config)
    encoder, rows = encode_run(data, model, tokenizer, spec.max_length, spec.subset_rule())
    spec = spec.replace(steps=spec.training_steps, max_length=encoder.max_length)
    if record is not None:
        record = dataclasses.replace(record, max_length=spec.max_length)
    args = TrainingArguments(output_dir=output, steps=spec.steps, epochs=spec.epochs, batch_size=spec.batch_size,
                             eval_batch_size=spec.eval_batch_size, learning_rate=spec.lr,
                             weight_decay=spec.weight_decay, warmup_ratio=spec.warmup_ratio,
                             eval_every=spec.eval_every, save_every=spec.save_every, patience=spec.patience,
                             seed=spec.seed, progress=progress, bf16=spec.bf16, data_order=spec.data_order,
                             group_by_length=spec.group_by_length, seed_at_start=spec.seed_at_start,
                             report_to=spec.report_to)
    trainer = Trainer(model, encoder, rows["train"], rows["validation"], data.metrics, data.label_names, args,
                      adapter_metadata=record.to_dict() if record is not None else None)
    return Run(spec, data, backbone, tokenizer, config, model, encoder, rows, trainer, threads, record)
