"""SK-Prompt: text -> frozen input-embedding layer -> adapter -> prepended to the input's embeddings.

Shapes: text ids (m,) -> representation (1, m, d) -> adapter (1, m, d) -> expanded (batch, m, d),
concatenated before the input's (batch, seq, d) embeddings. The attention mask gains m ones and
position ids continue after the text, counting only real tokens so that left padding is harmless.

Merged (`SKModel.merge()`) on a causal decoder, the prompt sits before the input under causal
attention, so its keys and values do not depend on the input: they are computed once and served
as a key/value prefix, and the backbone then runs on the input tokens only.
"""

from __future__ import annotations

import torch
from torch import nn

from sktuning.core.backbone import accepts, eval_mode
from sktuning.core.errors import BACKBONE_REFUSALS, UsageError, brief
from sktuning.core.kv_prefix import KeyValuePrefix, allow_checkpointing_with_prefix, kept, text_key_values, unkept
from sktuning.core.padding import gather_positions, text_adjacent_order
from sktuning.core.semantic import PromptVectors, SemanticText


class SemanticPrompt(SemanticText):
    def __init__(self, backbone: nn.Module, text_input_ids: torch.Tensor, config):
        super().__init__(backbone, text_input_ids, config)
        self.joins_as_prefix = False  # until merged into a key/value prefix
        self.takes_use_cache = accepts(backbone, "use_cache")
        self._check_vectors_are_read(backbone)
        self.check_runs(backbone, "does not take prompt vectors with its attention mask and positions ({error}), so "
                                  "SK-Prompt cannot be used with it; use mode='prefix' instead.")

    @torch.no_grad()
    def _check_vectors_are_read(self, backbone: nn.Module) -> None:
        """The text as vectors that are no row of the embedding table: an architecture that needs token
        ids beyond its embedding layer (per-layer token inputs, routing by token id) is refused now."""
        ids = self.text_input_ids.unsqueeze(0).to(backbone.get_input_embeddings().weight.device)
        embeds = backbone.get_input_embeddings()(ids)
        with eval_mode(backbone):
            try:
                backbone(inputs_embeds=embeds * 1.001)
                from_ids = backbone(input_ids=ids).last_hidden_state.float()
                from_vectors = backbone(inputs_embeds=embeds).last_hidden_state.float()
            except BACKBONE_REFUSALS as err:
                raise UsageError(f"{type(backbone).__name__} does not run on input vectors alone ({brief(err)}): "
                                 "it reads token ids past its embedding layer, so SK-Prompt cannot feed it "
                                 "refined vectors; use mode='prefix' instead.") from err
        tolerance = (1e-4 if embeds.dtype == torch.float32 else 3e-2) * (float(from_ids.abs().max()) + 1e-6)
        if float((from_ids - from_vectors).abs().max()) > tolerance:
            raise UsageError(f"{type(backbone).__name__} reads token ids otherwise than their embeddings (it rescales or "
                             "drops them by id), so the vectors SK-Prompt prepends would not be read as the text; "
                             "use mode='prefix' instead.")

    @property
    def virtual_positions(self) -> int:
        """Leading output positions that are the prompt's: none once it is served as a prefix."""
        return 0 if self.joins_as_prefix else self.num_text_tokens

    @torch.no_grad()
    def encode(self, backbone: nn.Module) -> tuple[torch.Tensor, tuple[int, ...]]:
        embedding = backbone.get_input_embeddings()
        ids = self.text_input_ids.to(embedding.weight.device)
        representation = embedding(ids).float().unsqueeze(0)  # (1, m, d)
        return representation, tuple(representation.shape)

    def contribution(self, backbone: nn.Module) -> PromptVectors | KeyValuePrefix:
        """The prompt's (1, m, d) vectors (the adapter runs once, at batch size 1); merged on a causal decoder,
        their keys and values, (layers, 1, kv_heads, m, head_dim) (per-layer lists where shapes differ)."""
        if self.joins_as_prefix:
            return KeyValuePrefix(*unkept(self.merged, self.kv_shape))
        return PromptVectors(self.merged if self.merged is not None else self.adapter(self.representation))

    @torch.no_grad()
    def merge(self, backbone: nn.Module) -> None:
        dtype = backbone.get_input_embeddings().weight.dtype
        prompt = self.adapter(self.representation).to(dtype)
        if not _is_causal(backbone, prompt):
            # bidirectional: the prompt's states depend on the input; keep prepending it. A copy: the
            # embedding adapter returns its own Parameter, which would be registered a second time
            self.merged = prompt.detach().clone()
            return
        if self.cache_keyword is None:  # the backbone takes no cache to hold it: keep prepending the vectors
            self.merged = prompt.detach().clone()
            return
        mask = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
        try:
            kv, shape = text_key_values(backbone, self.cache_keyword, self._positions(mask), inputs_embeds=prompt)
        except UsageError:  # a cache that cannot hold it (recurrent layers, hybrids): keep prepending the vectors
            self.merged = prompt.detach().clone()
            return
        self.merged, self.kv_shape, self.joins_as_prefix = kept(kv, shape), shape, True
        try:  # a cache the model fills but cannot read back as a prefix (a sparse-attention indexer's)
            self.check_runs(backbone, "does not read the merged prompt as a key/value prefix ({error})")
        except UsageError:
            self.merged, self.joins_as_prefix = prompt.detach().clone(), False
            return
        allow_checkpointing_with_prefix(backbone)

    def unmerge(self) -> None:
        super().unmerge()
        self.joins_as_prefix = False

    def inject(self, backbone, input_ids, inputs_embeds, attention_mask, token_type_ids, writable=False):
        contribution = self.contribution(backbone)
        if isinstance(contribution, KeyValuePrefix):  # merged on a decoder
            return self.prefix_arguments(backbone, contribution, input_ids, inputs_embeds, attention_mask,
                                         token_type_ids, writable)
        if inputs_embeds is None:
            inputs_embeds = backbone.get_input_embeddings()(input_ids)
        batch = inputs_embeds.shape[0]
        prompt = contribution.vectors.to(inputs_embeds.dtype).expand(batch, -1, -1)  # broadcast, no copy
        text_mask = attention_mask.new_ones(batch, self.num_text_tokens)
        full_mask = torch.cat([text_mask, attention_mask], dim=1)
        embeds = torch.cat([prompt, inputs_embeds], dim=1)
        if token_type_ids is not None:
            token_type_ids = torch.cat([token_type_ids.new_zeros(batch, self.num_text_tokens), token_type_ids], dim=1)
        order = text_adjacent_order(attention_mask, self.num_text_tokens)  # left padding: the prompt after it
        if order is not None:
            embeds, full_mask, token_type_ids = (gather_positions(t, order) for t in (embeds, full_mask, token_type_ids))
        kwargs = {"inputs_embeds": embeds, "attention_mask": full_mask, **self._positions(full_mask)}
        if self.takes_use_cache:  # training and scoring need no cache; generation extends one
            kwargs["use_cache"] = writable
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return kwargs


@torch.no_grad()
def _is_causal(backbone: nn.Module, prompt: torch.Tensor) -> bool:
    """Asked of the model itself: do the prompt's states ignore the token that follows it?

    Two inputs of the same length, the prompt then one of two different tokens: the same shapes run
    the same kernels, so on a causal model the prompt's states agree to the last bit in any dtype,
    while on an encoder they move.
    """
    first = torch.cat([prompt, prompt[:, :1]], dim=1)
    second = torch.cat([prompt, -prompt[:, -1:]], dim=1)
    with eval_mode(backbone):
        states = [backbone(inputs_embeds=x).last_hidden_state[:, :prompt.shape[1]].float() for x in (first, second)]
    return bool((states[0] - states[1]).abs().max() <= 1e-6 * states[0].abs().max().clamp(min=1e-6))
