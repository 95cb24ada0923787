"""The on-disk format of an adapter folder (what `SKModel.save_pretrained` writes): its file names,
its metadata, and where a folder or Hub repo id resolves to. Light: no torch, so the CLI can check an
adapter's record before anything heavy loads."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
import os
from pathlib import Path
from typing import Any

CONFIG_NAME = "sk_config.json"
#: the adapter, head and token ids under SKModel's state-dict names. The name is the one transformers'
#: Trainer reads a checkpoint from (resume, best model) with `load_state_dict(strict=False)`; it takes
#: PEFT's "adapter_model.safetensors" for a PEFT adapter and fails on a model that is none.
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def resolve_adapter_folder(path: str | os.PathLike) -> Path:
    folder = Path(path)
    if folder.is_dir():
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise UsageError(f"{folder} is not an SK-Tuning adapter folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
                             "(written by SKModel.save_pretrained).")
        return folder
    if folder.exists() or str(path).count("/") != 1:
        raise UsageError(f"Adapter folder {path} does not exist; pass the folder given to save_pretrained.")
    from huggingface_hub import snapshot_download  # a Hub repo id such as "user/sk-adapter"

    try:
        return Path(snapshot_download(str(path), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]))
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise UsageError(f"{path} is neither a local adapter folder nor a downloadable Hub repo ({err}).") from None


def read_adapter_meta(adapter_path: str | os.PathLike) -> dict[str, Any]:
    """The JSON beside an adapter's weights: config, backbone fingerprint and training record."""
    return read_meta(resolve_adapter_folder(adapter_path) / CONFIG_NAME)


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON ({err}); it may be truncated: save the adapter again.") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise UsageError(f"{path} has no 'config' entry; it was not written by SKModel.save_pretrained.")
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise UsageError(f"{path} was written by a newer sktuning (format {meta['format_version']}); upgrade sktuning.")
    return meta

