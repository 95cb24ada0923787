"""Share an adapter on the Hugging Face Hub: the adapter folder (config and weights, never the
backbone) plus a generated model card, sent with huggingface_hub's `upload_folder`.

The card is the Hub's: YAML metadata (`library_name: sktuning`, `base_model`, tags, the pipeline,
and the test metrics as `model-index` results, made by huggingface_hub's `ModelCardData`), then what
the adapter is, its semantic text, its scores and how to load it. Loading back by repo id goes
through `SKModel.from_pretrained`, which fetches the folder with `snapshot_download`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from safetensors import safe_open

from sktuning.core.atomic import atomic_directory
from sktuning.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME, resolve_adapter_folder, read_adapter_meta
from sktuning.core.tasks import task_named
from sktuning.sharing.zoo import MODELS

CARD_NAME = "README.md"


def run_metrics(adapter_folder: str | Path) -> dict[str, Any] | None:
    """`metrics.json` of the `sktune train` run that wrote `adapter_folder` (DIR/adapter), if any."""
    path = Path(adapter_folder).parent / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def base_model(training: dict[str, Any]) -> tuple[str | None, str]:
    """(the Hub id the adapter's backbone comes from, how this copy differs), as far as it is known."""
    name = training.get("model") or ""
    if name in MODELS:
        return MODELS[name].hub_id or None, MODELS[name].provenance
    if name.count("/") == 1 and not Path(name).exists():  # a Hub id
        return name, ""
    return None, f"a local model folder ({name})" if name else "not recorded"


def model_card(adapter_folder: str | Path, repo_id: str | None = None,
               metrics: dict[str, Any] | None = None) -> str:
    """The README.md the Hub shows for this adapter; `metrics` default to the run's metrics.json."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = resolve_adapter_folder(adapter_folder)  # a Hub repo id too
    meta = read_adapter_meta(folder)
    config, training = meta["config"], meta.get("training") or {}
    metrics = metrics if metrics is not None else run_metrics(folder)
    scores = (metrics or {}).get("metrics") or {}
    task_name = training.get("task") or (metrics or {}).get("task") or "your own data"
    base, provenance = base_model(training)
    mode = {"prefix": "SK-Prefix", "prompt": "SK-Prompt"}[config["mode"]]
    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as weights:
        trainable = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys()
                        if k != "semantic.text_input_ids")
    pipeline = task_named(config["task"], config.get("multi_label", False)).hub_pipeline
    split = (metrics or {}).get("split", "test")
    data = ModelCardData(
        library_name="sktuning", base_model=base, pipeline_tag=pipeline, model_name=repo_id or folder.name,
        tags=["sktuning", "sk-tuning", mode.lower(), config["task"]],
        eval_results=[EvalResult(task_type=pipeline, dataset_type=task_name, dataset_name=task_name,
                                 dataset_split=split, metric_type=name, metric_value=float(value))
                      for name, value in scores.items() if isinstance(value, (int, float))] or None)
    reference = repo_id or str(folder)
    backbone_line = (f"`{base}`" + (f" ({provenance})" if provenance else "")) if base else provenance
    lines = [f"# {repo_id or 'SK-Tuning adapter'}", "",
             f"An SK-Tuning (Prottasha et al., Scientific Reports 14:30667, 2024) adapter ({mode}, `{config['adapter']}` "
             f"adapter, {trainable:,d} trainable parameters) for the task **{task_name}** "
             f"({config['task']}), trained with sktuning {meta.get('sktuning_version', '?')} on the frozen "
             f"backbone {backbone_line}. Only the adapter and its task head are here, not the backbone.", "",
             "The frozen model reads this semantic text before every input:", "", f"> {config['text']}", ""]
    if config.get("label_names"):
        lines += [f"Labels: {', '.join(f'`{n}`' for n in config['label_names'])}.", ""]
    if scores:
        lines += [f"| metric ({split} split) | value |", "|---|---:|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in scores.items() if isinstance(value, (int, float))]
        if metrics and metrics.get("steps"):
            lines += ["", f"Trained for {metrics['steps']} steps (seed {metrics.get('seed', '?')}); the best "
                          f"validation score was reached at step {metrics.get('best_step', '?')}."]
        lines.append("")
    load_name = base or training.get("model") or "<the backbone>"
    lines += ["## How to load it", "", "```python", "from sktuning import SKModel, predict",
              "from sktuning.sharing.zoo import load_backbone", "",
              f'backbone, tokenizer = load_backbone("{load_name}")',
              f'model = SKModel.from_pretrained(backbone, "{reference}", tokenizer=tokenizer)',
              'print(predict(model.merge(), tokenizer, ["your text here"]).records)', "```", "",
              f"or `sktune predict --adapter {reference} --model {load_name} \"your text here\"`. "
              "Loading checks the backbone's shape (type, width, layers, vocabulary) against the one the "
              "adapter was trained on.", ""]
    if provenance and base:
        lines += [f"The backbone it was trained on is `{base}` {provenance}; on `{base}` itself the weights "
                  "differ by that conversion, so its scores may differ slightly.", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def stage_upload(adapter_folder: str | Path, target: str | Path, repo_id: str | None = None,
                 metrics: dict[str, Any] | None = None) -> Path:
    """Write into `target` exactly what the upload sends: the adapter's config and weights and the card."""
    folder = resolve_adapter_folder(adapter_folder)
    card = model_card(folder, repo_id, metrics if metrics is not None else run_metrics(adapter_folder))
    with atomic_directory(target) as tmp:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(folder / name, tmp / name)
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    return Path(target)


def push_to_hub(adapter: Any, repo_id: str, *, token: str | None = None, private: bool = False,
                commit_message: str = "Upload SK-Tuning adapter", metrics: dict[str, Any] | None = None) -> str:
    """Create `repo_id` (if new) and upload the adapter with its card; returns the commit's URL.
    `adapter`: a folder written by `save_pretrained`, or an SKModel (saved to a scratch folder first)."""
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as scratch:
        if hasattr(adapter, "save_pretrained"):
            adapter.save_pretrained(Path(scratch) / "adapter")
            adapter = Path(scratch) / "adapter"
        staged = stage_upload(adapter, Path(scratch) / "upload", repo_id, metrics)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=staged, commit_message=commit_message,
                                 repo_type="model")
    return info.commit_url

