"""An SK adapter in other libraries' formats, so it goes where users already serve models.

- `peft`: an SK-Prefix becomes a PEFT prefix-tuning adapter (`prefix_projection=False`) whose prefix
  is the adapter's output, loaded into PEFT through its own `initialize_kv_prefix_from_past_key_values`;
  an SK-Prompt becomes a PEFT prompt-tuning adapter whose virtual tokens are the adapter's output
  vectors. `PeftModel.from_pretrained(backbone, OUT)` then computes what SKModel computes, on inputs
  padded on the right or not at all (PEFT counts positions over padding; SKModel over real tokens).
  A task head (classification, regression, tagging) is not PEFT's: it is written beside the adapter
  as `sk_head.safetensors` + `sk_head.json`, and `attach_head` puts it on the PEFT model.
- `vllm-prompt-embeds`: an SK-Prompt's output vectors, the tensor to put before an input's own
  embeddings in vLLM's `prompt_embeds` input. SK-Prefix has no upstream serving engine: vLLM, SGLang
  and TGI take no trained key/value prefix.

PEFT's task type is CAUSAL_LM for `task="causal-lm"` and FEATURE_EXTRACTION for every other task
(PEFT 0.21's sequence-classification prefix path does not run on transformers 5.24).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sktuning.core.atomic import atomic_directory
from sktuning.core.config import SKTuningConfig
from sktuning.core.extras import require
from sktuning.core.heads import TaskHead
from sktuning.core.kv_prefix import key_value_cache
from sktuning.core.model import SKModel
from sktuning.core.semantic import PromptVectors
from sktuning.core.tasks import task_of

FORMATS = ("peft", "vllm-prompt-embeds")
HEAD_WEIGHTS, HEAD_CONFIG = "sk_head.safetensors", "sk_head.json"
PROMPT_EMBEDS = "prompt_embeds.safetensors"


@torch.no_grad()
def adapter_output(model: SKModel) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SK-Prompt: the (m, d) vectors; SK-Prefix: (keys, values), each (layers, 1, heads, m, head_dim)."""
    contribution = model.semantic.contribution(model.backbone)
    if model.sk_config.mode == "prompt":
        if not isinstance(contribution, PromptVectors):
            raise UsageError("This SK-Prompt is merged into a key/value prefix, which is no prompt vectors to "
                             "export: export it before merge(), or after unmerge().")
        return contribution.vectors[0].float()
    if not contribution.stacked:
        raise UsageError(f"{type(model.backbone).__name__} caches keys/values of differing shapes in its layers; "
                         "PEFT's prefix tuning holds one shape for every layer, so this SK-Prefix has no PEFT "
                         "counterpart. Serve it with sktuning (merge() and generate()).")
    return contribution.keys.float(), contribution.values.float()


def export_peft(model: SKModel, output: str | Path) -> Path:
    """Write `model` as a PEFT adapter folder (and its task head, where it has one). PEFT wraps the live
    backbone to build the adapter: its weights are untouched, but under gradient checkpointing PEFT
    turns on `enable_input_require_grads`; export from a model you are done training."""
    config = model.sk_config
    if config.head != "linear" or config.answer_template is not None:
        raise UsageError("PEFT export takes adapters with the linear head and no answer template: a label-word "
                         "head or an appended template has no PEFT counterpart. Serve this adapter with sktuning.")
    exported = adapter_output(model)
    peft = require("peft", "bench")
    m = model.semantic.num_text_tokens
    features = peft.TaskType.FEATURE_EXTRACTION  # the weights' layout is the same for every task type
    if config.mode == "prefix":
        peft_model = peft.get_peft_model(model.backbone, peft.PrefixTuningConfig(task_type=features,
                                                                                  num_virtual_tokens=m))
        require("peft.tuners.cartridge.utils", "bench").initialize_kv_prefix_from_past_key_values(
            peft_model, past_key_values=key_value_cache(*exported, writable=True))
    else:
        peft_model = peft.get_peft_model(model.backbone, peft.PromptTuningConfig(task_type=features,
                                                                                  num_virtual_tokens=m))
        peft_model.prompt_encoder["default"].embedding.weight.data.copy_(exported)
    with atomic_directory(output) as tmp:
        peft_model.save_pretrained(tmp)
        if task_of(config).generates:  # loaded on the causal LM: PEFT's CAUSAL_LM wrapper generates
            adapter_config = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8"))
            adapter_config["task_type"] = peft.TaskType.CAUSAL_LM.value
            (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2), encoding="utf-8")
        if model.head is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
                      str(tmp / HEAD_WEIGHTS))
            record = {"sk_config": config.to_dict(), "virtual_tokens": m if config.mode == "prompt" else 0}
            (tmp / HEAD_CONFIG).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return Path(output)


def export_prompt_embeds(model: SKModel, output: str | Path) -> Path:
    """Write an SK-Prompt's output vectors, in the backbone's dtype, for vLLM's `prompt_embeds`."""
    if model.sk_config.mode != "prompt":
        raise UsageError("--format vllm-prompt-embeds takes an SK-Prompt adapter. An SK-Prefix is a key/value "
                         "prefix in every layer, which no upstream serving engine (vLLM, SGLang, TGI) takes; "
                         "serve it with sktuning (merge() and generate()), or export it with --format peft.")
    dtype = model.backbone.get_input_embeddings().weight.dtype
    vectors = adapter_output(model).to(dtype).contiguous()
    with atomic_directory(output) as tmp:
        save_file({"prompt_embeds": vectors.cpu()}, str(tmp / PROMPT_EMBEDS), metadata={"text": model.sk_config.text})
    return Path(output)


class AttachedHead(nn.Module):
    """A PEFT feature-extraction model under the exported SK task head (pooling included)."""

    def __init__(self, peft_model: nn.Module, head: TaskHead, virtual_tokens: int):
        super().__init__()
        self.peft_model, self.head, self.virtual_tokens = peft_model, head, virtual_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}  # sentence pairs (BERT)
        hidden = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.head(hidden[:, self.virtual_tokens:], attention_mask)  # prompt tuning's tokens come first


def attach_head(peft_model: nn.Module, folder: str | Path) -> AttachedHead:
    """The task head exported into `folder` on a PEFT model loaded from it (`PeftModel.from_pretrained`)."""
    folder = Path(folder)
    record = json.loads((folder / HEAD_CONFIG).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / HEAD_WEIGHTS))
    head = TaskHead(SKTuningConfig.from_dict(record["sk_config"]), tensors["classifier.weight"].shape[1])
    head.load_state_dict(tensors)
    return AttachedHead(peft_model, head.eval(), record["virtual_tokens"])
