"""Every method the benchmark compares, behind the interface of the training loop: `model(**batch)`
returns an output with `loss` and `logits`, and `trainable_state_dict` gives what trains.

SK-Tuning runs as SKModel; the baselines are PEFT's own implementations (prompt tuning with random
or TEXT initialisation, prefix tuning with random initialisation, from the text's key/value cache or
with the projection MLP, P-tuning, LoRA), plus a
linear probe and full fine-tuning. All of them read the backbone's last hidden states through the
same masked pooling and the same linear `TaskHead`, so that only the method differs.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from sktuning.core import backbone as bb
from sktuning.core.config import SKTuningConfig
from sktuning.core.extras import require
from sktuning.core.heads import TaskHead
from sktuning.core.kv_prefix import key_value_cache, require_cache_argument, text_key_values, unflatten_key_values
from sktuning.core.tasks import task_of
from sktuning.bench.settings import ALL_METHODS
from sktuning.core.model import SKModel, SKModelOutput

peft = require("peft", "bench")


class HeadOnTop(nn.Module):
    """A (PEFT-wrapped, frozen or fully trainable) backbone + SKModel's own pooling and head.

    `inputs_only`: the method adds no virtual tokens (LoRA, probe, full fine-tuning), so it gets what
    SKModel gives a backbone: token type ids, and positions counted over real tokens (left padding
    does not shift them). PEFT's prompt methods place their virtual tokens themselves.
    """

    def __init__(self, backbone: nn.Module, config: SKTuningConfig, hidden_size: int, skip: int = 0,
                 inputs_only: bool = False, raw_backbone: nn.Module | None = None):
        super().__init__()
        self.backbone, self.sk_config, self.skip = backbone, config, skip
        self.head = TaskHead(config, hidden_size)
        raw = raw_backbone if raw_backbone is not None else backbone
        self.position_offset = bb.position_offset(raw) if inputs_only and bb.accepts(raw, "position_ids") else None
        self.token_types = inputs_only and bb.accepts(raw, "token_type_ids")
        self.room = bb.max_positions(raw)
        self.room = None if self.room is None else self.room - skip  # the virtual tokens take positions
        self.text_token_ids: list[int] = []  # set by `build_method`: the encoder's special-token rule reads it

    def input_length(self, requested: int) -> int:
        """At most `requested` input tokens, fewer where the virtual tokens leave less room (as SKModel)."""
        return requested if self.room is None else min(requested, self.room)

    def forward(self, input_ids, attention_mask, labels=None, token_type_ids=None, **_):
        kwargs = {}
        if self.position_offset is not None:
            kwargs["position_ids"] = bb.position_ids_from_mask(attention_mask, self.position_offset)
        if self.token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = hidden[:, self.skip:]
        logits = self.head(hidden, attention_mask)
        return SKModelOutput(loss=task_of(self.sk_config).loss(logits, labels) if labels is not None else None,
                             logits=logits)

    # what the training loop keeps of the best model: every trainable tensor (the whole model for full-ft)
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def load_trainable_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, p in self.named_parameters():
            if name in tensors:
                p.copy_(tensors[name])


def _peft(backbone, peft_config, config, skip=0) -> HeadOnTop:
    return HeadOnTop(peft.get_peft_model(backbone, peft_config), config, backbone.config.hidden_size, skip)


@torch.no_grad()
def text_cache(backbone: nn.Module, text_ids: list[int]) -> DynamicCache:
    """The frozen backbone's keys and values of exactly SK's text tokens (no chat template, no special
    tokens added), read as SK-Prefix reads them (`kv_prefix.text_key_values`, which also reads an
    encoder's cache), as the per-layer cache PEFT's initialiser takes."""
    ids = torch.tensor([text_ids], device=backbone.get_input_embeddings().weight.device)
    offset = bb.position_offset(backbone)
    positions = {"position_ids": bb.position_ids_from_mask(torch.ones_like(ids), offset)} \
        if bb.accepts(backbone, "position_ids") else {}
    kv, shape = text_key_values(backbone, require_cache_argument(backbone), positions, input_ids=ids)
    keys, values = unflatten_key_values(kv, shape)
    return key_value_cache(keys, values, writable=True)


def build_method(name: str, backbone: nn.Module, text_ids: list[int], config: SKTuningConfig,
                 tokenizer_path: str | None = None, head_ids: tuple[list, list[int]] | None = None) -> nn.Module:
    """A fresh model for method `name` on `backbone` (which it may modify: pass a fresh copy).

    A name ending in "-lw" takes the label-word head: `config` says head='label-words', `head_ids` holds
    the label words' and the answer template's token ids, and `backbone` keeps its LM head."""
    model = _build(name, backbone, text_ids, config, tokenizer_path, head_ids)
    if isinstance(model, HeadOnTop):
        model.text_token_ids = list(text_ids)
    return model


def _build(name, backbone, text_ids, config, tokenizer_path, head_ids) -> nn.Module:
    m = len(text_ids)
    features = peft.TaskType.FEATURE_EXTRACTION
    if name.endswith("-lw"):
        if head_ids is None or config.head != "label-words":
            raise UsageError(f"{name} needs a label-words config and the label words' token ids (head_ids).")
        if name == "full-ft-lw":  # the text read as plain tokens (identity adapter, frozen), the backbone trains
            model = SKModel(backbone, SKTuningConfig(**{**config.to_dict(), "mode": "prompt"}), text_ids, *head_ids)
            model.semantic.requires_grad_(False)
            model.backbone.requires_grad_(True)
            return model
        base = name.removesuffix("-lw")
        if base in ("sk-prefix-unrelated", "sk-prefix-random-ids"):  # the runner hands it the other text's ids
            base = "sk-prefix-lowrank"
        _, mode, adapter = base.split("-", 2)
        return SKModel(backbone, SKTuningConfig(**{**config.to_dict(), "mode": mode, "adapter": adapter}), text_ids,
                       *head_ids)
    if name == "sk-prefix-frozen":  # the adapter stays at the identity: the text as the frozen model reads it
        model = _build("sk-prefix-lowrank", backbone, text_ids, config, None, None)
        model.semantic.adapter.requires_grad_(False)
        return model
    if name == "sk-prefix-unrelated":  # the runner hands it the unrelated text's ids
        return _build("sk-prefix-lowrank", backbone, text_ids, config, None, None)
    if name.startswith("sk-"):
        _, mode, adapter = name.split("-", 2)
        sk_config = SKTuningConfig(**{**config.to_dict(), "mode": mode, "adapter": adapter})
        return SKModel(backbone, sk_config, text_ids)
    if name == "prompt-tuning":
        return _peft(backbone, peft.PromptTuningConfig(task_type=features, num_virtual_tokens=m), config, m)
    if name == "prompt-tuning-text":
        if tokenizer_path is None:
            raise UsageError("prompt-tuning-text needs the tokenizer's folder.")
        model = _peft(backbone, peft.PromptTuningConfig(
            task_type=features, num_virtual_tokens=m, prompt_tuning_init=peft.PromptTuningInit.TEXT,
            prompt_tuning_init_text=config.text, tokenizer_name_or_path=tokenizer_path), config, m)
        # PEFT tokenizes the text with the special tokens and cuts it to m: on BERT that starts from
        # [CLS] and drops the last word. Start from exactly the tokens SK reads.
        words = backbone.get_input_embeddings().weight
        model.backbone.prompt_encoder["default"].embedding.weight.data.copy_(words[text_ids])
        return model
    if name == "prefix-tuning":  # = P-tuning v2's deep prompts: trainable keys/values at every layer
        return _peft(backbone, peft.PrefixTuningConfig(task_type=features, num_virtual_tokens=m), config)
    if name == "prefix-tuning-text":  # the same parametrisation as sk-prefix-embedding, built by PEFT
        model = _peft(backbone, peft.PrefixTuningConfig(task_type=features, num_virtual_tokens=m), config)
        require("peft.tuners.cartridge.utils", "bench").initialize_kv_prefix_from_past_key_values(
            model.backbone, past_key_values=text_cache(backbone, text_ids))
        return model
    if name == "prefix-tuning-mlp":
        return _peft(backbone, peft.PrefixTuningConfig(task_type=features, num_virtual_tokens=m,
                                                       prefix_projection=True, encoder_hidden_size=128), config)
    if name == "p-tuning":
        return _peft(backbone, peft.PromptEncoderConfig(task_type=features, num_virtual_tokens=m,
                                                        encoder_hidden_size=128), config, m)
    if name == "lora":
        # PEFT's default targets for the architecture: the query and value projections of attention
        lora = peft.get_peft_model(backbone, peft.LoraConfig(task_type=features, r=8, lora_alpha=16, lora_dropout=0.0))
        return HeadOnTop(lora, config, backbone.config.hidden_size, inputs_only=True, raw_backbone=backbone)
    if name == "head-only":
        return HeadOnTop(backbone.requires_grad_(False), config, backbone.config.hidden_size, inputs_only=True)
    if name == "full-ft":
        return HeadOnTop(backbone.requires_grad_(True), config, backbone.config.hidden_size, inputs_only=True)
    raise UsageError(f"Unknown method {name!r}: choose from {', '.join(ALL_METHODS)}.")
