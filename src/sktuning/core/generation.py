"""Generation through the semantic text: greedy or sampled decoding over transformers' Cache API.

The text (prompt embeddings or key/value prefix) is read once in the prefill; each new token then
runs the backbone on one position with the growing cache. Batches must be left-padded, so that
every row's next token lands in the same column.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import torch

from sktuning.core import backbone as bb
from sktuning.core.tasks import TASKS, task_of


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, max_new_tokens: int = 20,
             do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
             eos_token_id: int | list[int] | None = None, pad_token_id: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, seq) prompts -> (batch, seq + new) ids: the inputs followed by what the model wrote.

    As in transformers: `eos_token_id` may list several ids (any of them ends a row), `top_k=0` or
    None samples from the whole vocabulary, and finished rows are filled with `pad_token_id`.
    """
    if not task_of(model.sk_config).generates:
        writers = " or ".join(t.described for t in TASKS if t.generates)
        raise UsageError(f"generate() needs an SKModel built with {writers}, not {model.sk_config.task!r}.")
    attention_mask, eos = decoding_preamble([model], input_ids, attention_mask, max_new_tokens, do_sample,
                                            temperature, top_k, eos_token_id)
    argument = model.semantic.cache_keyword
    if argument is None:
        raise UsageError(f"{type(model.backbone).__name__} takes no cache argument, so generate() cannot decode "
                         "one token at a time through it; score candidates with the model's forward instead.")
    was_training = model.training
    model.eval()
    try:
        return _decode(model, input_ids, attention_mask, argument, max_new_tokens, do_sample, temperature, top_k,
                       eos, pad_token_id, generator)
    finally:
        model.train(was_training)


def decoding_preamble(models, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, max_new_tokens: int,
                      do_sample: bool, temperature: float, top_k: int | None,
                      eos_token_id: int | list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """What every decoding checks first, one model's or a mixed batch's: the settings, room for prompt and
    new tokens in each of `models`' positions, left padding. Returns the attention mask (all ones where
    none is given) and the end-of-sequence ids as a tensor."""
    if max_new_tokens < 1:
        raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    if do_sample and temperature <= 0:
        raise UsageError(f"temperature must be > 0 when sampling, got {temperature}.")
    if top_k is not None and top_k < 0:
        raise UsageError(f"top_k must be >= 0 (0 or None: no limit), got {top_k}.")
    if isinstance(eos_token_id, int):
        eos_token_id = [eos_token_id]
    eos = torch.as_tensor(list(eos_token_id or []), dtype=torch.long, device=input_ids.device)
    for model in models:
        model.check_fits(input_ids.shape[1] + max_new_tokens, "prompt and new tokens")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if (attention_mask[:, -1] == 0).any():
        raise UsageError("generate() needs left padding, so every row ends with a real token: "
                         "set tokenizer.padding_side = 'left'.")
    return attention_mask, eos


def _decode(model, input_ids, attention_mask, argument, max_new_tokens, do_sample, temperature, top_k,
            eos, pad_token_id, generator) -> torch.Tensor:
    backbone, semantic = model.backbone, model.semantic
    kwargs = semantic.inject(backbone, input_ids, None, attention_mask, None, writable=True)
    out = backbone(**kwargs)
    cache = kwargs.get(argument) or getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    mask = kwargs["attention_mask"]
    position = bb.position_ids_from_mask(mask, semantic.position_offset)[:, -1:]
    logits = model.lm_head(out.last_hidden_state[:, -1]).float()
    new_tokens = decode_after_prefill(backbone, model.lm_head, logits, mask, position, cache, argument,
                                      semantic.takes_position_ids, max_new_tokens, do_sample, temperature, top_k,
                                      eos, pad_token_id, generator)
    return torch.cat([input_ids, new_tokens], dim=1)


def decode_after_prefill(backbone, head, logits, mask, position, cache, argument: str, takes_positions: bool,
                         max_new_tokens: int, do_sample: bool, temperature: float, top_k: int | None,
                         eos: torch.Tensor, pad_token_id: int | None,
                         generator: torch.Generator | None) -> torch.Tensor:
    """(batch, new) ids: one token per step from the prefill's last `logits`, each step one position
    through the backbone with the growing `cache`; a row that wrote one of `eos` is filled with
    `pad_token_id` (else the first EOS) after it, and decoding stops when every row has. Shared by one
    adapter's and mixed batches' decoding."""
    fill = pad_token_id if pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    new_tokens = []
    for _ in range(max_new_tokens):
        token = choose_next_token(logits, do_sample, temperature, top_k, generator)
        token = torch.where(finished, torch.full_like(token, fill), token)
        new_tokens.append(token)
        if len(eos):
            finished |= torch.isin(token, eos)
            if finished.all():
                break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        position = position + 1
        step = {"input_ids": token[:, None], "attention_mask": mask, argument: cache, "use_cache": True}
        if takes_positions:
            step["position_ids"] = position
        logits = head(backbone(**step).last_hidden_state[:, -1]).float()
    return torch.stack(new_tokens, dim=1)


def choose_next_token(logits: torch.Tensor, do_sample: bool, temperature: float, top_k: int | None,
            generator: torch.Generator | None) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k:
        threshold = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
