"""What several commands load: the backbone, a saved adapter, a task's data, the environment record."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import platform
import time
from pathlib import Path
from typing import Any


def quiet_libraries() -> None:
    """transformers' and datasets' own logs and bars off: the commands report for themselves."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    # bitsandbytes (imported by peft when installed) warns at import that an optional CPU kernel package is absent
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        import datasets
    except ImportError:  # the data extra is not installed: predict still works
        return
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def load_model(name: str, trust_remote_code: bool = False, device: str | None = "auto", dtype: str | None = None,
               quantize: str | None = None, lm_head: bool = False):
    """`lm_head`: a decoder comes with its LM head (`sktuning.sharing.zoo.load_backbone`)."""
    import torch

    from sktuning.scale.runtime import device_for
    from sktuning.sharing.zoo import load_backbone

    backbone, tokenizer = load_backbone(name, dtype=getattr(torch, dtype or "float32"),
                                        trust_remote_code=trust_remote_code, quantize=quantize,
                                        device=device_for(device), lm_head=lm_head)
    return (backbone if quantize else backbone.to(device_for(device))), tokenizer


def model_reference(name: str) -> str:
    """How the adapter records its backbone: a local folder as an absolute path, so that `eval` and
    `predict` find it from any directory; a named model or hub id as given."""
    from sktuning.sharing.zoo import MODELS

    return name if name in MODELS or not Path(name).exists() else str(Path(name).resolve())


def load_adapter(adapter: str, model: str | None, trust_remote_code: bool = False, device: str | None = "auto",
                 dtype: str | None = None, quantize: str | None = None):
    """(SKModel, tokenizer, AdapterRecord) for a saved adapter, on its own backbone unless `model` is given;
    quantized as it was trained (`quantize` None) unless `quantize` says otherwise ("none": full weights)."""
    from sktuning.core.adapter_format import read_adapter_meta
    from sktuning.core.model import SKModel
    from sktuning.training.spec import AdapterRecord

    record = AdapterRecord.from_meta(read_adapter_meta(adapter))
    model_name = model or record.model
    if not model_name:
        raise UsageError(f"{adapter} does not record its backbone; pass --model.")
    scheme = record.quantize if quantize is None else (None if quantize == "none" else quantize)
    backbone, tokenizer = load_model(model_name, trust_remote_code, device, dtype, scheme)
    return SKModel.from_pretrained(backbone, adapter, tokenizer=tokenizer), tokenizer, record


def environment() -> dict[str, Any]:
    import torch
    import transformers

    from sktuning.core.version import code_version, cpu_model

    code = code_version()
    return {"sktuning": code["version"], "commit": code["commit"], "dirty": code["dirty"],
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_model(),
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
