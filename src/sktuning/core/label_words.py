"""The label-word head's glue: its words and answer template as token ids, the template appended after
every input, and the head built from the LM head (a decoder) or the backbone's reading of the words.

    >>> config = SKTuningConfig(text="Sentiment:", head="label-words", label_words=[["negative"], ["positive"]],
    ...                         answer_template=" Answer:")
    >>> model = get_sk_model(AutoModelForCausalLM.from_pretrained(name), tokenizer, config)  # zero-shot at step 0
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import torch
from torch import nn
from transformers import PreTrainedModel

from sktuning.core import backbone as bb
from sktuning.core.config import SKTuningConfig
from sktuning.core.heads import LabelWordHead, LanguageModelHead


def tokenize_template(tokenizer, config: SKTuningConfig) -> list[int]:
    """The answer template's token ids (no special tokens), or [] when the config has none."""
    if config.answer_template is None:
        return []
    ids = list(tokenizer(config.answer_template, add_special_tokens=False)["input_ids"])
    if not ids:
        raise UsageError(f"The answer template {config.answer_template!r} tokenizes to nothing; give a template "
                         "with words, e.g. ' Answer:'.")
    return ids


def tokenize_label_words(tokenizer, config: SKTuningConfig) -> list[list[list[int]]]:
    """Each label's words as token ids, as they follow the answer template: the tokens that
    `template + " " + word` has after the template's own (no space added after a template that ends in
    whitespace); " " + word alone when there is no template or the joint text splits the template
    differently. So with the template ' Answer:' a word is read as in 'Answer: positive'."""
    template = config.answer_template or ""
    lead = list(tokenizer(template, add_special_tokens=False)["input_ids"]) if template else []
    gap = "" if template[-1:].isspace() else " "
    unk = getattr(tokenizer, "unk_token_id", None)
    out = []
    for i, label in enumerate(config.label_words or []):
        ids_of_label = []
        for word in label:
            joint = list(tokenizer(template + gap + word, add_special_tokens=False)["input_ids"]) if template else []
            ids = joint[len(lead):] if lead and joint[:len(lead)] == lead else \
                list(tokenizer(gap + word, add_special_tokens=False)["input_ids"])
            if not ids:
                raise UsageError(f"Label word {word!r} (label {config._label(i)}) tokenizes to nothing; "
                                 "choose another word.")
            if unk is not None and unk in ids:
                raise UsageError(f"Label word {word!r} (label {config._label(i)}) is not in the tokenizer's "
                                 "vocabulary (it reads as the unknown token); choose a word the tokenizer knows.")
            ids_of_label.append(ids)
        out.append(ids_of_label)
    check_distinct_labels(out, config)
    return out


def check_distinct_labels(label_word_ids: list[list[list[int]]], config: SKTuningConfig) -> None:
    """Refuse labels whose words tokenize alike: their rows would be equal and they could never be told apart.
    Words that merely share a first token stay distinct (their later tokens differ)."""
    seen: dict[tuple, int] = {}
    for i, label in enumerate(label_word_ids):
        key = tuple(sorted(tuple(word) for word in label))
        if key in seen:
            raise UsageError(f"Labels {config._label(seen[key])} and {config._label(i)} have label words that "
                             f"tokenize to the same tokens ({[list(w) for w in key]}), so their scores would be "
                             "identical: give them different words.")
        seen[key] = i


def append_template(template: torch.Tensor, backbone: nn.Module, input_ids: torch.Tensor | None,
                inputs_embeds: torch.Tensor | None, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None):
    """The answer template after each row's last real token, under either padding side: (batch, seq) ->
    (batch, seq + k). Tokens after the last real one (right padding) move k places right; the
    template's mask is 1 and its token types are the last real token's."""
    batch, seq = attention_mask.shape
    k = template.numel()
    device = attention_mask.device
    positions = torch.arange(seq, device=device)
    last = (attention_mask.long() * (positions + 1)).max(1).values - 1          # (batch,), -1 for no real token
    moved = positions + k * (positions[None] > last[:, None])                  # where each old slot goes
    inserted = last[:, None] + 1 + torch.arange(k, device=device)             # where the template goes

    def put(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """(batch, seq, *rest) and the template's (batch, k, *rest) -> (batch, seq + k, *rest)."""
        rest = tuple(old.shape[2:])
        out = old.new_empty((batch, seq + k) + rest)  # every slot is written: seq moved, k inserted
        for where, values in ((moved, old), (inserted, new.to(old.dtype))):
            out.scatter_(1, where.reshape(where.shape + (1,) * len(rest)).expand(where.shape + rest), values)
        return out

    if input_ids is not None:
        input_ids = put(input_ids, template.to(device).expand(batch, k))
    else:
        embeds = backbone.get_input_embeddings()(template.to(device))
        inputs_embeds = put(inputs_embeds, embeds.expand(batch, -1, -1))
    if token_type_ids is not None:
        kind = token_type_ids.gather(1, last.clamp(min=0)[:, None]).expand(batch, k)
        token_type_ids = put(token_type_ids, kind)
    attention_mask = put(attention_mask, attention_mask.new_ones(batch, k))
    return input_ids, inputs_embeds, attention_mask, token_type_ids


def output_embeddings(model: nn.Module) -> nn.Module | None:
    """The LM head of a `*ForCausalLM` (None for a headless model)."""
    return model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None


def check_head_ids(config: SKTuningConfig, label_word_ids, template_input_ids) -> None:
    """The token ids SKModel needs for the config's head and template, made by `get_sk_model`."""
    if config.head == "label-words" and not label_word_ids:
        raise UsageError("head='label-words' needs the label words' token ids: build the model with "
                         "get_sk_model(backbone, tokenizer, config), which tokenizes them.")
    if config.head == "label-words" and len(label_word_ids) != config.num_labels:
        raise UsageError(f"label_word_ids hold {len(label_word_ids)} labels but the config has "
                         f"num_labels={config.num_labels}.")
    if (config.answer_template is not None) != bool(template_input_ids):
        raise UsageError("answer_template and template_input_ids go together: build the model with "
                         "get_sk_model(backbone, tokenizer, config), which tokenizes the template.")


def label_word_head(causal_lm: nn.Module | None, backbone: PreTrainedModel, config: SKTuningConfig,
                    label_word_ids: list[list[list[int]]], probe_ids: torch.Tensor) -> LabelWordHead:
    """From the LM head when the model has one (its logits at the last real token), else from the frozen
    backbone's reading of the words."""
    vocab = bb.vocab_size(backbone)
    if any(not 0 <= t < vocab for label in label_word_ids for word in label for t in word):
        raise UsageError(f"The label words' token ids fall outside the backbone's vocabulary ({vocab} entries): "
                         "use the tokenizer that belongs to this backbone.")
    head = LabelWordHead(config, bb.hidden_size(backbone), label_word_ids)
    if causal_lm is None:
        return head.from_pooled_words(backbone)
    if config.pooling != "last":
        raise UsageError(f"head='label-words' on a model with an LM head reads the LM head's prediction at the last "
                         f"real token, but pooling={config.pooling!r}: use pooling='last'.")
    words = output_embeddings(causal_lm)
    try:
        lm_head = LanguageModelHead.matching(causal_lm, words, backbone, bb.text_config(causal_lm),
                                             probe_ids.to(backbone.get_input_embeddings().weight.device))
        if lm_head.head is not words:  # a transform runs before the word rows (BERT-style): no rows to start from
            raise UsageError("the LM head is more than its word rows")
    except ValueError:
        raise UsageError(f"{type(causal_lm).__name__} changes its logits after the LM head in a way sktuning does "
                         "not reproduce, so head='label-words' cannot start from them; load the backbone with "
                         "AutoModel to start from its reading of the label words instead.") from None
    return head.from_output_embeddings(lm_head)
