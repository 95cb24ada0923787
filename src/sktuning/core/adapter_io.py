"""The torch side of an adapter folder (`sktuning.core.adapter_format` names its files): its tensors read
back whole and checked, an `SKModel` rebuilt from them, and the state-dict names a loader expects.

Kept apart from `sktuning.core.model` so that the model's own file stays about the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from sktuning.core import backbone as bb
from sktuning.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME, read_meta, resolve_adapter_folder
from sktuning.core.atomic import verify_sha256
from sktuning.core.config import SKTuningConfig
from sktuning.core.errors import UsageError
from sktuning.core.label_words import tokenize_label_words, tokenize_template
from sktuning.core.special_tokens import tokenize_text


def read_tensors(folder: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The folder's weights, refused where they differ from the checksum saved beside them."""
    verify_sha256(folder / WEIGHTS_NAME, meta.get("weights_sha256"))
    try:
        return load_file(str(folder / WEIGHTS_NAME))
    except (SafetensorError, OSError) as err:
        raise UsageError(f"{folder / WEIGHTS_NAME} is not a readable safetensors file ({err}); "
                         "it may be truncated or corrupted: save the adapter again.") from None


def load_sk_model(cls, backbone: nn.Module, adapter_path: str | os.PathLike, tokenizer=None,
                  is_trainable: bool = False):
    """`SKModel.from_pretrained`: the model `cls` on `backbone` with the folder's adapter and head, refusing
    a folder that does not fit the backbone, its tokenizer or the config exactly."""
    folder = resolve_adapter_folder(adapter_path)
    meta = read_meta(folder / CONFIG_NAME)
    bb.check_fingerprint(meta.get("backbone", {}), bb.base_model_of(backbone), str(adapter_path))
    config = SKTuningConfig.from_dict(meta["config"])
    tensors = read_tensors(folder, meta)
    text_ids = tensors.get("semantic.text_input_ids")
    if text_ids is None:
        raise UsageError(f"{folder / WEIGHTS_NAME} holds no 'semantic.text_input_ids'; it was not written by "
                         "SKModel.save_pretrained.")
    if tokenizer is not None and tokenize_text(tokenizer, config.text) != text_ids.tolist():
        raise UsageError(f"The tokenizer turns the adapter's text into other token ids than it was trained "
                         f"with; pass the tokenizer of the backbone in {adapter_path}.")
    template = tensors.get("template_input_ids")
    template = template.tolist() if template is not None else None
    words = tensors.get("head.label_word_ids")
    words = [[[t for t in w if t >= 0] for w in label if any(t >= 0 for t in w)] for label in words.tolist()] \
        if words is not None and config.head == "label-words" else None
    if tokenizer is not None and config.answer_template is not None \
            and tokenize_template(tokenizer, config) != template:
        raise UsageError(f"The tokenizer turns the adapter's answer template into other token ids than it was "
                         f"trained with; pass the tokenizer of the backbone in {adapter_path}.")
    if tokenizer is not None and config.head == "label-words" and tokenize_label_words(tokenizer, config) != words:
        raise UsageError(f"The tokenizer turns the adapter's label words into other token ids than it was "
                         f"trained with; pass the tokenizer of the backbone in {adapter_path}.")
    model = cls(backbone, config, text_ids, words, template)
    expected = model.trainable_state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        raise UsageError(f"{folder / WEIGHTS_NAME} does not fit this backbone and config: missing {missing}, "
                         f"unexpected {unexpected}, wrong shape {wrong}.")
    model.load_trainable_state_dict(tensors)
    model.train(is_trainable)
    if not is_trainable:
        model.requires_grad_(False)
    return model


def state_dict_names(module: nn.Module) -> list[str]:
    """The keys `module.load_state_dict` looks for, found the way it finds them (each module's parameters
    and persistent buffers, a shared module under each of its names) without building the state dict, so
    no state-dict hook of a quantized or sharded backbone runs."""
    names = []
    for prefix, sub in module.named_modules(remove_duplicate=False):
        local = [*sub._parameters.items(),
                 *((k, v) for k, v in sub._buffers.items() if k not in sub._non_persistent_buffers_set)]
        names += [f"{prefix}.{k}" if prefix else k for k, v in local if v is not None]
    return names
