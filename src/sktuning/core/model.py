"""`SKModel`: a frozen backbone, the semantic text joined to every input, and a task head.

    >>> model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode="prefix", text="Sentiment:"))
    >>> out = model(input_ids=ids, attention_mask=mask, labels=labels)   # out.loss, out.logits
    >>> model.save_pretrained("out/adapter")                              # adapter + head + config
    >>> model = SKModel.from_pretrained(backbone, "out/adapter")

It is a `PreTrainedModel` so that transformers' `Trainer` (TRL's too) saves it, its checkpoints and its
best model with `save_pretrained` (the adapter alone) where it would write a plain module's whole state
dict, and reads them back with its own loader (see `save_pretrained`).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from sktuning.core import backbone as bb
from sktuning.core.adapter_format import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME
from sktuning.core.adapter_io import load_sk_model, state_dict_names
from sktuning.core.atomic import atomic_directory, sha256_of
from sktuning.core.config import SKTuningConfig
from sktuning.core.heads import LanguageModelHead, TaskHead
from sktuning.core.label_words import (append_template, check_head_ids, label_word_head, output_embeddings,
                                  tokenize_label_words, tokenize_template)
from sktuning.core.modes import semantic_text
from sktuning.core.padding import streams_first
from sktuning.core.special_tokens import tokenize_text
from sktuning.core.tasks import task_of
from sktuning.core.version import __version__

__all__ = ["SKModel", "SKModelOutput", "get_sk_model", "tokenize_text"]


@dataclass
class SKModelOutput(ModelOutput):
    """`hidden_states`, when asked for, cover the input tokens only, as the bare backbone's would (and the
    answer template's, appended after each input's last real token, where the config has one)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SKModel(PreTrainedModel):
    """Only `semantic` (the text's adapter) and `head` train; the backbone stays frozen."""

    #: transformers.Trainer: the loss is the model's own mean, pass it no `num_items_in_batch`
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True  # the backbone's, see gradient_checkpointing_enable

    def __init__(self, backbone: PreTrainedModel, config: SKTuningConfig, text_input_ids: list[int] | torch.Tensor,
                 label_word_ids: list[list[list[int]]] | None = None, template_input_ids: list[int] | None = None):
        """`label_word_ids` (head='label-words') and `template_input_ids` (answer_template) are token ids
        that `get_sk_model` makes with the tokenizer (`tokenize_label_words`, `tokenize_template`)."""
        # nn.Module's init, not PreTrainedModel's: that one would rewrite the attention and experts
        # implementation in the config it is given, here the backbone's own (`config`), and build a
        # generation config; SKModel has no transformers config of its own and changes nothing of the backbone.
        nn.Module.__init__(self)
        if not isinstance(config, SKTuningConfig):
            raise UsageError(f"config must be an SKTuningConfig, got {type(config).__name__}.")
        check_head_ids(config, label_word_ids, template_input_ids)
        causal_lm = backbone if task_of(config).generates else None
        head = _language_model_head(backbone) if causal_lm is not None else None
        word_lm = backbone if config.head == "label-words" and output_embeddings(backbone) is not None else None
        backbone = bb.base_model_of(backbone)
        bb.keep_gradients_flowing(backbone)  # a 4-bit backbone on the CPU would otherwise drop them silently
        text_input_ids = torch.as_tensor(text_input_ids, dtype=torch.long).flatten()
        _check_text_ids(text_input_ids, backbone)
        backbone.requires_grad_(False)
        lm_head = None
        if causal_lm is not None:
            lm_head = LanguageModelHead.matching(causal_lm, head, backbone, bb.text_config(causal_lm),
                                                 text_input_ids.to(backbone.get_input_embeddings().weight.device))
        self.sk_config = config
        self.backbone = backbone
        template = torch.as_tensor(template_input_ids or [], dtype=torch.long).flatten()
        if template.numel() and (int(template.max()) >= bb.vocab_size(backbone) or int(template.min()) < 0):
            raise UsageError("The answer template's token ids fall outside the backbone's vocabulary: use the "
                             "tokenizer that belongs to this backbone.")
        # appended after every input's last real token (`sktuning.core.label_words.append_template`); in the state
        # dict, and so in the saved adapter, where there is one (no empty tensor in every other adapter)
        self.register_buffer("template_input_ids", template.to(backbone.get_input_embeddings().weight.device),
                             persistent=bool(template.numel()))
        # the wrapped model's decoding defaults, where trainers (TRL) and generation look for them
        self.generation_config = getattr(causal_lm if causal_lm is not None else backbone, "generation_config", None)
        device = backbone.get_input_embeddings().weight.device
        self.semantic = semantic_text(backbone, text_input_ids.to(device), config).to(device)
        initializer_range = getattr(bb.text_config(backbone), "initializer_range", 0.02)
        # causal-lm reads the backbone's own (frozen) LM head; every other task trains a new head
        self.lm_head = lm_head.requires_grad_(False) if lm_head is not None else None
        if lm_head is not None:
            self.head = None
        elif config.head == "label-words":
            self.head = label_word_head(word_lm, backbone, config, label_word_ids, text_input_ids).to(device)
        else:
            self.head = TaskHead(config, bb.hidden_size(backbone), initializer_range).to(device)
        reserved = self.reserved_tokens
        limit = bb.max_positions(backbone)
        if limit is not None and reserved >= limit:
            raise UsageError(f"The semantic text and answer template take {reserved} tokens but the backbone reads "
                             f"at most {limit} positions, leaving no room for the input: shorten them.")
        table = bb.learned_positions(backbone)
        # the longest input that fits after the text, for a backbone that cannot read past its table
        self.max_input_tokens = table - reserved if table is not None else None
        start = getattr(bb.text_config(backbone), "bos_token_id", None)
        # the text took the sequence-start token: an input that starts with it too would read it twice
        self.start_token = start if isinstance(start, int) and int(text_input_ids[0]) == start else None
        # the longest input the backbone was made to read after the text (any position table, rotary too)
        self.input_room = limit - reserved if limit is not None else None

    @property
    def config(self):
        """The backbone's transformers config, as a wrapped model's (PEFT's, TRL's trainers read it);
        the SK-Tuning settings are `sk_config`."""
        return self.backbone.config

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def get_output_embeddings(self) -> None:
        """None, and refused for task='causal-lm': SKModel's logits come from its own forward, after the
        semantic text. Code that applies the LM head to the backbone's hidden states itself (TRL's SFTTrainer
        with its default loss_type='chunked_nll') would train nothing of the adapter."""
        if self.lm_head is not None:
            raise UsageError("This SKModel computes its logits and loss in its own forward (the semantic text "
                             "first); a trainer that reads the LM head to compute the loss itself would skip the "
                             "adapter. With TRL's SFTTrainer pass SFTConfig(loss_type='nll').")

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        """Recompute the frozen backbone's activations in the backward (non-reentrant unless asked)."""
        self.backbone.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.backbone.gradient_checkpointing_disable()

    def input_length(self, requested: int) -> int:
        """The one input-length rule, for training, evaluation and prediction alike: `requested` tokens,
        fewer where the backbone's positions (of any kind) leave less room after the text."""
        return requested if self.input_room is None else min(requested, self.input_room)

    @property
    def reserved_tokens(self) -> int:
        """Positions every input shares with others: the semantic text's and the answer template's."""
        return self.semantic.num_text_tokens + int(self.template_input_ids.numel())

    @property
    def text_token_ids(self) -> list[int]:
        """The semantic text's token ids (the start token first, where the tokenizer has one)."""
        return self.semantic.text_input_ids.tolist()

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool = False, **kwargs: Any) -> SKModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise UsageError("Pass exactly one of input_ids or inputs_embeds.")
        batch, seq = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if seq == 0:
            raise UsageError("The inputs have no tokens (sequence length 0); pass at least one token per row.")
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq, dtype=torch.long, device=self.semantic.text_input_ids.device)
        if tuple(attention_mask.shape) != (batch, seq):
            raise UsageError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected ({batch}, {seq}).")
        self.check_fits(seq)
        if self.start_token is not None and input_ids is not None:
            first = input_ids.gather(1, attention_mask.long().argmax(1, keepdim=True))  # each row's first real token
            if bool((first == self.start_token).any()):
                raise UsageError(f"These inputs begin with the sequence-start token (id {self.start_token}), which "
                                 "the semantic text already holds, so the model would read it twice: tokenize the "
                                 "inputs with add_special_tokens=False (sktuning.data.encoding.InputEncoder, "
                                 "sktune and predict() apply that rule).")
        if labels is not None:
            task_of(self.sk_config).check_labels(labels, self.sk_config.num_labels, batch, seq)
        if self.template_input_ids.numel():
            input_ids, inputs_embeds, attention_mask, token_type_ids = append_template(
                self.template_input_ids, self.backbone, input_ids, inputs_embeds, attention_mask, token_type_ids)
        kwargs.pop("use_cache", None)  # the semantic mode sets it; the output never carries a cache
        reserved = sorted(set(kwargs) & {"position_ids", "cache_position", "past_key_values", "past_key_value"})
        if reserved:
            raise UsageError(f"SKModel sets {', '.join(reserved)} itself (the semantic text comes first); "
                             "leave them out and pass attention_mask.")
        if self.merged and self.training and torch.is_grad_enabled():
            raise RuntimeError("This SKModel is merged (its adapter output is frozen) but in training mode: call "
                               "model.eval() (or run under torch.no_grad()) to use it, or unmerge() to train it.")
        out = self.semantic(self.backbone, input_ids, inputs_embeds, attention_mask, token_type_ids,
                            output_hidden_states=output_hidden_states, **kwargs)
        skip = self.semantic.virtual_positions  # the text's own positions in SK-Prompt
        hidden = out.last_hidden_state[:, skip:]
        logits = self.lm_head(hidden) if self.lm_head is not None else self.head(hidden, attention_mask)
        hidden_states = None
        if output_hidden_states:
            hidden_states = tuple(h[:, :, skip:] if streams_first(h, out.last_hidden_state) else h[:, skip:]
                                  for h in out.hidden_states)
        loss = task_of(self.sk_config).loss(logits, labels) if labels is not None else None
        return SKModelOutput(loss=loss, logits=logits, hidden_states=hidden_states)

    def check_fits(self, tokens: int, what: str = "input tokens") -> None:
        """Refuse inputs longer than the backbone's position table leaves room for after the text (and
        before the answer template)."""
        room, text = self.max_input_tokens, self.reserved_tokens
        if room is not None and tokens > room:
            taken = "the text and answer template take" if self.template_input_ids.numel() else "the text takes"
            raise UsageError(f"{tokens} {what} do not fit: the backbone has {room + text} positions and {taken} "
                             f"{text}; truncate inputs to {room} tokens "
                             f"(tokenizer(..., truncation=True, max_length={room})).")

    # -- serving ---------------------------------------------------------------------------------
    def merge(self) -> "SKModel":
        """Freeze the adapter's output into a constant, so serving costs nothing beyond the backbone.

        SK-Prefix becomes a fixed key/value prefix. SK-Prompt on a causal decoder becomes one too (the
        prompt's keys and values cannot depend on the input that follows it), so the backbone runs on
        the input tokens only; on an encoder the prompt is precomputed and still prepended.
        """
        self.semantic.merge(self.backbone)
        return self

    def unmerge(self) -> "SKModel":
        """Back to the trainable adapter (after `merge`)."""
        self.semantic.unmerge()
        return self

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Continue each input after the semantic text (task='causal-lm'); see `sktuning.core.generation`."""
        from sktuning.core.generation import generate

        return generate(self, input_ids, attention_mask, **kwargs)

    @property
    def merged(self) -> bool:
        return self.semantic.merged is not None

    # -- parameters --------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter, head and the token ids (text, answer template): everything that is not the backbone
        (nor its LM head), under the names `state_dict()` gives them.

        Read from those modules alone, so a sharded backbone's state-dict hooks (FSDP) never run.
        """
        state = self.semantic.state_dict(prefix="semantic.")
        if self.head is not None:
            state.update(self.head.state_dict(prefix="head."))
        if self.template_input_ids.numel():
            state["template_input_ids"] = self.template_input_ids
        return state

    def load_trainable_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `trainable_state_dict` gave, touching neither the backbone nor its hooks."""
        if "template_input_ids" in tensors:
            self.template_input_ids = tensors["template_input_ids"].to(self.template_input_ids)
        for name in ("semantic", "head"):
            module = getattr(self, name)
            if module is not None:
                part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
                module.load_state_dict(part, strict=False)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """All parameters (or the trainable ones), counted whole even where the backbone is sharded (FSDP,
        ZeRO-3); the keywords are PreTrainedModel's, which transformers.Trainer passes."""
        skip = {id(p) for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()} \
            if exclude_embeddings else set()
        return sum(getattr(p, "ds_numel", p.numel()) for p in self.parameters()
                   if id(p) not in skip and (p.requires_grad or not only_trainable))

    def print_trainable_parameters(self) -> None:
        trainable, total = self.num_trainable_parameters(), self.num_parameters()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}")

    # -- save and load -------------------------------------------------------------------------------
    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """The frozen backbone's (and LM head's) state-dict names: what `save_pretrained` leaves out. The
        Trainer's loader compares the keys a checkpoint lacks with these, and says nothing when they match."""
        saved = self.trainable_state_dict().keys()
        return [name for name in state_dict_names(self) if name not in saved]

    def tie_weights(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to tie: the backbone came tied from its own `from_pretrained` and stays frozen, and the
        adapter and head share no weights with it (the Trainer calls this after loading a checkpoint)."""

    def save_pretrained(self, save_directory: str | os.PathLike, training: dict[str, Any] | None = None, *,
                        state_dict: dict[str, torch.Tensor] | None = None, is_main_process: bool = True) -> None:
        """Write `sk_config.json` and `model.safetensors`: the adapter, head and token ids under their
        state-dict names (no backbone weights, no pickle), checksummed.

        `training` is free JSON kept beside the config (the CLI records the model name and input length).
        transformers' Trainer calls this for `save_model`, every checkpoint and the best model, with the
        full `state_dict` (its gathered copy under ZeRO-3 or FSDP, where the modules' own tensors are
        shards): only the adapter's entries of it are written. Being `model.safetensors`, the file is
        what the Trainer reads back itself (`resume_from_checkpoint`, `load_best_model_at_end`), with
        `load_state_dict(strict=False)`; the backbone's keys it lacks are `_keys_to_ignore_on_save`.
        """
        if not is_main_process:
            return
        meta = {"format_version": FORMAT_VERSION, "sktuning_version": __version__,
                "config": self.sk_config.to_dict(), "backbone": bb.fingerprint(self.backbone),
                "training": training or {}}
        tensors = self.trainable_state_dict()
        if state_dict and tensors.keys() <= state_dict.keys():
            tensors = {k: state_dict[k] for k in tensors}
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        with atomic_directory(save_directory) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            meta["weights_sha256"] = sha256_of(tmp / WEIGHTS_NAME)
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")

    def push_to_hub(self, *args: Any, **kwargs: Any) -> str:
        """Refused: transformers' own upload would send no model card. The Hub upload with its card is
        `sktuning.sharing.push_to_hub(model, repo_id)`, outside the core (which imports nothing of the
        package's other rooms)."""
        raise NotImplementedError("SKModel.push_to_hub: use `from sktuning.sharing import push_to_hub; "
                                  "push_to_hub(model, repo_id)` (it uploads the adapter with its model card).")

    @classmethod
    def from_pretrained(cls, backbone: PreTrainedModel, adapter_path: str | os.PathLike, tokenizer=None,
                        is_trainable: bool = False) -> "SKModel":
        """Rebuild an SK model on `backbone` from a folder written by `save_pretrained` (or a Hub repo id);
        the folder must hold exactly this model's adapter tensors (`sktuning.core.adapter_io.load_sk_model`)."""
        return load_sk_model(cls, backbone, adapter_path, tokenizer, is_trainable)


def get_sk_model(backbone: PreTrainedModel, tokenizer, config: SKTuningConfig) -> SKModel:
    """Wrap a transformers model for SK-Tuning: freeze it and attach the text, adapter and head.

    head='label-words' starts from the LM head where `backbone` has one (load decoders with
    AutoModelForCausalLM), else from the backbone's reading of the label words (`LabelWordHead`)."""
    words = tokenize_label_words(tokenizer, config) if config.head == "label-words" else None
    return SKModel(backbone, config, tokenize_text(tokenizer, config.text), words, tokenize_template(tokenizer, config))


def _language_model_head(model: PreTrainedModel) -> nn.Module:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise UsageError(f"task='causal-lm' needs a model with a language-modelling head, but {type(model).__name__} "
                         "has none: load it with AutoModelForCausalLM.")
    return head


def _check_text_ids(ids: torch.Tensor, backbone: PreTrainedModel) -> None:
    if ids.numel() == 0:
        raise UsageError("The semantic text tokenizes to nothing; give a non-empty text.")
    vocab = bb.vocab_size(backbone)
    if int(ids.max()) >= vocab or int(ids.min()) < 0:
        raise UsageError(f"The text's token ids reach {int(ids.max())} but the backbone's vocabulary has {vocab} "
                         "entries: use the tokenizer that belongs to this backbone.")
    limit = bb.max_positions(backbone)
    if limit is not None and ids.numel() >= limit:
        raise UsageError(f"The semantic text has {ids.numel()} tokens but the backbone reads at most {limit} "
                         "positions, leaving no room for the input: shorten the text.")
