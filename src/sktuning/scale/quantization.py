"""Frozen backbones held in 8 or 4 bits by bitsandbytes, through transformers' `BitsAndBytesConfig`
(the `quantize` extra).

SK-Tuning trains nothing inside the backbone, so its weights can stay quantized, as QLoRA keeps
LoRA's base model: gradients flow through the frozen quantized layers to the prefix or prompt
adapter and the head, which train in full precision. `int8` is LLM.int8() (8-bit weights, outliers in
16 bits); `nf4` is 4-bit NormalFloat with double quantization, computing in the backbone's dtype.
bitsandbytes runs on CUDA and, since 0.49, on the CPU (measured here in docs/quantized.md).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

from typing import Any

QUANTIZE = ("int8", "nf4")


def quantization_config(scheme: str, compute_dtype: Any = None):
    """transformers' BitsAndBytesConfig for `scheme` (int8 or nf4)."""
    if scheme not in QUANTIZE:
        raise UsageError(f"--quantize {scheme!r} is not one of {', '.join(QUANTIZE)}.")
    from sktuning.core.extras import require

    require("bitsandbytes", "quantize")
    import torch
    from transformers import BitsAndBytesConfig

    if scheme == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype or torch.float32)


def quantized_scheme(model) -> str | None:
    """The scheme a loaded backbone is held in (int8, nf4), or None for full weights."""
    config = getattr(model, "quantization_config", None) or getattr(getattr(model, "config", None),
                                                                     "quantization_config", None)
    if config is None:
        return None
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    if get("load_in_8bit"):
        return "int8"
    return get("bnb_4bit_quant_type", "nf4") if get("load_in_4bit") else None
