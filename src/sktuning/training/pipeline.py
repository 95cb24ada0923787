"""The steps every run takes between its model and its training loop, in one place: `sktune train`,
the Python API and every `sktune bench` run call these, so they cannot drift apart.

- threads: from the option, else torch's own choice (one per core), never a constant;
- rows: the subsets of one rule (`sktuning.data.subsets`) with an explicit subset seed;
- the encoder: `InputEncoder.for_model`, the model's own input-length rule, for an SKModel and for
  every benchmark baseline alike.
"""

from __future__ import annotations

from sktuning.core.tasks import task_named
from sktuning.data.encoding import InputEncoder
from sktuning.data.subsets import SubsetRule, draw_subsets


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
