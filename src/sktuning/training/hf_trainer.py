"""An SKModel under transformers' own `Trainer` (and TRL's `SFTTrainer`, which derives from it).

`SKModel` trains, evaluates and predicts under a plain `transformers.Trainer`: its forward takes the
collated batch (`input_ids`, `attention_mask`, `labels`) and returns the loss. What a plain Trainer
gets wrong is saving: for a model that is not a `PreTrainedModel` it writes the whole state dict,
the frozen backbone included, and reads it back the same way. `SKTrainer` changes only that:
`save_model(dir)`, every checkpoint and `load_best_model_at_end` write and read what
`SKModel.save_pretrained` writes (the adapter and head, checksummed), so a checkpoint or a saved
model loads with `SKModel.from_pretrained`, and `resume_from_checkpoint` continues from it.

Tokenize inputs as SKModel reads them: with `add_special_tokens=False` when the semantic text took
the sequence-start token (`SKModel.start_token`; the model refuses inputs that would read it twice).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import Trainer

from sktuning.training.checkpoints import load_adapter_tensors

TRAINING_ARGS_NAME = "training_args.bin"  # where transformers keeps its arguments beside a saved model


class AdapterOnlySaving:
    """Mixed into a `transformers.Trainer` subclass (TRL's `SFTTrainer` too): saved models, checkpoints and
    the best model at the end hold the adapter only. `sk_trainer(SFTTrainer)` makes such a class."""

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        self.accelerator.unwrap_model(self.model, keep_torch_compile=False).save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.accelerator.unwrap_model(model if model is not None else self.model, keep_torch_compile=False)
        model.load_trainable_state_dict(load_adapter_tensors(Path(resume_from_checkpoint)))

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)


class SKTrainer(AdapterOnlySaving, Trainer):
    """`transformers.Trainer` whose saved models and checkpoints hold the adapter only."""


def sk_trainer(base: type) -> type:
    """`base` (a Trainer subclass, e.g. `trl.SFTTrainer`) that saves and loads the adapter only. With TRL,
    pass `SFTConfig(loss_type="nll")`: TRL's default chunked loss reaches past the model's forward."""
    return type(f"SK{base.__name__}", (AdapterOnlySaving, base), {})
