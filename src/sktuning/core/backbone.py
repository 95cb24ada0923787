"""What SK-Tuning needs to know about a backbone, asked only through transformers' generic interfaces.

No architecture is named here: the input-embedding getter, config attributes, the forward
signature and the Cache API answer every question, so models written after this file work too.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import inspect
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn
from transformers import PreTrainedModel


def base_model_of(model: nn.Module) -> PreTrainedModel:
    """The headless transformer inside `*ForCausalLM`, `*ForMaskedLM` and similar wrappers."""
    if not isinstance(model, PreTrainedModel):
        raise UsageError(f"The backbone must be a transformers PreTrainedModel, got {type(model).__name__}.")
    if getattr(model.config, "is_encoder_decoder", False) and _encoder(model) not in (None, model):
        raise UsageError(f"{type(model).__name__} is an encoder-decoder model; SK-Tuning joins the text to one stack. "
                         "For classification or tagging pass its encoder (model.get_encoder()); SK-Prefix across "
                         "the encoder and the decoder is not supported.")
    base = model
    while True:  # down to the innermost model that reads the text (an audio or vision LM's language model)
        inner = getattr(base, "base_model", base)
        if inner is base:  # a base_model_prefix that names no child (Llama 4, Mllama, Voxtral): the child
            words = _input_embeddings(base)  # that holds the same input embeddings
            inner = next((child for child in base.children() if isinstance(child, PreTrainedModel)
                          and words is not None and _input_embeddings(child) is words), base)
        if inner is base:
            break
        base = inner
    if not isinstance(_input_embeddings(base), nn.Embedding):
        raise UsageError(f"{type(base).__name__} has no input-embedding table (an nn.Embedding behind "
                         "get_input_embeddings()) through which SK-Tuning could read the text.")
    return base


def _encoder(model: nn.Module) -> nn.Module | None:
    try:
        return model.get_encoder()
    except (NotImplementedError, AttributeError):
        return None


def _input_embeddings(model: nn.Module) -> nn.Module | None:
    try:
        return model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        return None


def text_config(backbone: PreTrainedModel):
    config = backbone.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def hidden_size(backbone: PreTrainedModel) -> int:
    return int(text_config(backbone).hidden_size)


def num_layers(backbone: PreTrainedModel) -> int:
    return int(text_config(backbone).num_hidden_layers)


def vocab_size(backbone: PreTrainedModel) -> int:
    return int(backbone.get_input_embeddings().num_embeddings)


def accepts(backbone: nn.Module, argument: str) -> bool:
    return argument in inspect.signature(backbone.forward).parameters


def cache_argument(backbone: nn.Module) -> str | None:
    """The name the backbone's forward uses for a key/value cache (`cache` in transformers >= 5.24)."""
    for name in ("cache", "past_key_values"):
        if accepts(backbone, name):
            return name
    return None


def position_offset(backbone: nn.Module) -> int:
    """First position id the backbone gives a real token.

    Models with a padding row in their learned position table (the fairseq convention, e.g. RoBERTa)
    number real tokens from `padding_idx + 1`; everyone else from 0.
    """
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Embedding) and "position" in name and module.padding_idx is not None:
            return int(module.padding_idx) + 1
    # models that number from a constant of their own keep it in their default `position_ids` buffer (YOSO: 2)
    for name, buffer in backbone.named_buffers():
        if name.endswith("position_ids") and buffer.numel() and not buffer.is_floating_point():
            return int(buffer.flatten()[0])
    return 0


def max_positions(backbone: PreTrainedModel) -> int | None:
    """Longest sequence the backbone can embed, or None when positions are unbounded (ALiBi)."""
    limit = getattr(text_config(backbone), "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    return limit - position_offset(backbone)


def learned_positions(backbone: nn.Module) -> int | None:
    """Rows of a learned position table (GPT-2, BERT, OPT...) that real tokens can use, else None.

    Past them such a model indexes out of its table (a CUDA device assert on GPU); rotary and ALiBi
    models only degrade, so they get no hard limit.
    """
    limit = getattr(text_config(backbone), "max_position_embeddings", None)
    words = backbone.get_input_embeddings()
    tables = [m for m in backbone.modules() if isinstance(m, nn.Embedding) and m is not words]
    # OPT's table holds `offset` extra rows that it adds to every position id itself
    if not isinstance(limit, int) or not any(t.num_embeddings - getattr(t, "offset", 0) == limit for t in tables):
        return None
    return limit - position_offset(backbone)


def position_ids_from_mask(attention_mask: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Positions that count only real tokens, so left padding does not shift them.

    (batch, seq) mask -> (batch, seq) ids; padded slots get a harmless in-range id.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) + start


def fingerprint(backbone: PreTrainedModel) -> dict[str, Any]:
    """The facts a saved adapter must match when it is loaded onto a backbone."""
    config = text_config(backbone)
    return {
        "model_type": getattr(config, "model_type", None),
        "name_or_path": getattr(backbone.config, "_name_or_path", None) or None,
        "hidden_size": hidden_size(backbone),
        "num_hidden_layers": num_layers(backbone),
        "vocab_size": vocab_size(backbone),
    }


def check_fingerprint(saved: dict[str, Any], backbone: PreTrainedModel, where: str) -> None:
    actual = fingerprint(backbone)
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        if key in saved and saved[key] != actual[key]:
            raise UsageError(
                f"The adapter in {where} was trained on a backbone with {key}={saved[key]} "
                f"({saved.get('name_or_path') or saved.get('model_type')}), but this backbone has "
                f"{key}={actual[key]} ({actual['name_or_path'] or actual['model_type']}). "
                "Load it onto the backbone it was trained with.")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run `module` (a frozen backbone, read once for the text) without dropout, then restore its flag."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def keep_gradients_flowing(model) -> int:
    """Stop bitsandbytes' CPU inference repacking of 4-bit weights; returns how many layers it touched.

    bitsandbytes 0.50.2, on a CPU with AVX512-BF16, repacks a `Linear4bit`'s weight the first time the
    layer runs in eval mode without gradients (SK-Prefix's text pass, any evaluation), and from then on
    runs it through `gemv_4bit`, which has no backward: gradients to everything before the layer are
    silently dropped, so the adapter never trains (only the head does). The frozen backbone is always
    in eval mode, so that path must be off."""
    touched = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            touched += 1
    return touched
