"""Task heads: masked pooling, a linear head, the backbone's LM head and the label-word head (each
task's loss is its task object's, `sktuning.core.tasks`).

Shapes: hidden states of the input tokens (batch, seq, d) and their mask (batch, seq) ->
sequence logits (batch, num_labels), or token logits (batch, seq, num_labels) for the input
tokens only (never for the text's positions).
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import torch
import torch.nn.functional as F
from torch import nn

from sktuning.core.config import SKTuningConfig
from sktuning.core.tasks import task_of


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(batch, seq, d) -> (batch, d); padding never counts, under either padding side."""
    mask = mask.to(hidden.dtype)
    if how == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    if how == "last":   # the real token with the highest position
        index = (mask.long() * (positions + 1)).argmax(1)
    elif how == "cls":  # the first real token
        index = (mask.long() * (mask.shape[1] - positions)).argmax(1)
    else:
        raise UsageError(f"Unknown pooling {how!r}: choose 'last', 'mean' or 'cls'.")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class TaskHead(nn.Module):
    """Dropout and a linear map; sequence tasks pool first, token tasks keep every input token."""

    def __init__(self, config: SKTuningConfig, hidden_size: int, initializer_range: float = 0.02):
        super().__init__()
        self.per_token, self.pooling = task_of(config).word_level, config.pooling
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(hidden_size, config.num_labels)
        nn.init.normal_(self.classifier.weight, std=initializer_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.per_token:
            hidden = pool(hidden, mask, self.pooling)
        return self.classifier(self.dropout(hidden.to(self.classifier.weight.dtype)))



class LanguageModelHead(nn.Module):
    """The backbone's own frozen LM head, then what its `*ForCausalLM.forward` does to the logits.

    Several architectures change the logits after the head: Granite divides them by the config's
    `logits_scaling`, HyperCLOVAX multiplies by it, Cohere scales by `logit_scale`, Gemma 2 and 3
    soft-cap them. The attribute's name does not say which, so `matching` finds out once, on the
    semantic text: the whole model's logits against its head's output.
    """

    def __init__(self, head: nn.Module, scale: float = 1.0, softcap: float | None = None):
        super().__init__()
        self.head, self.scale, self.softcap = head, float(scale), softcap

    @property
    def weight(self) -> torch.Tensor:  # the tied-embedding check in sharding reads it
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._transform(self.head(hidden), self.scale, self.softcap)

    @staticmethod
    def _transform(logits: torch.Tensor, scale: float, softcap: float | None) -> torch.Tensor:
        if scale != 1.0:
            logits = logits * scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    @classmethod
    @torch.no_grad()
    def matching(cls, causal_lm: nn.Module, head: nn.Module, base: nn.Module, config,
                 probe_ids: torch.Tensor) -> "LanguageModelHead":
        """The transform, among those `config` allows, that turns `head`'s output into the model's logits.
        Where the wrapper runs more than the output embeddings (BERT-style decoders: a dense layer and a
        norm first), the wrapper's child that holds them is the head."""
        was_training = causal_lm.training
        causal_lm.eval()
        try:
            ids = probe_ids[None]
            hidden = base(input_ids=ids).last_hidden_state
            want = causal_lm(input_ids=ids).logits.float()
        finally:
            causal_lm.train(was_training)
        holders = [child for child in causal_lm.children() if child is not base and child is not head
                   and any(module is head for module in child.modules())]
        best = float("inf")
        for candidate in [head, *holders]:
            try:
                raw = candidate(hidden).float()
            except (RuntimeError, TypeError):  # a holder that does not take hidden states alone
                continue
            if raw.shape != want.shape:
                continue
            found, error = cls._explained(candidate, raw, want, config)
            if found is not None:
                return found
            best = min(best, error)
        raise UsageError(f"{type(causal_lm).__name__} changes its logits after the LM head in a way sktuning does "
                         f"not reproduce (off by {best:.3g} on the semantic text): task='causal-lm' is not "
                         "supported for this architecture; a classification task works.")

    @classmethod
    def _explained(cls, head: nn.Module, raw: torch.Tensor, want: torch.Tensor,
                   config) -> tuple["LanguageModelHead | None", float]:
        scaling = getattr(config, "logits_scaling", None)
        scales = [1 / scaling, scaling] if scaling else []
        scales += [getattr(config, name, None) for name in ("logit_scale", "lm_head_multiplier", "output_multiplier")]
        scales = list(dict.fromkeys([float(s) for s in scales if s is not None and float(s) != 1.0] + [1.0]))
        cap = getattr(config, "final_logit_softcapping", None)
        tolerance = 1e-4 if next(head.parameters()).dtype == torch.float32 else 2e-2  # bf16 / fp16: ~1e-2
        tolerance *= float(want.abs().max()) + 1e-6
        best = float("inf")
        for softcap in ([float(cap)] if cap else []) + [None]:  # the fullest explanation first
            for scale in scales:
                error = float((cls._transform(raw, scale, softcap) - want).abs().max())
                if error <= tolerance:
                    return cls(head, scale, softcap), error
                best = min(best, error)
        return None, best


class LabelWordHead(nn.Module):
    """Class c's score is the pooled state times row c of a trainable (num_labels, d) weight, plus a bias,
    through the logit transform of the backbone's `*ForCausalLM` (`LanguageModelHead`).

    Initialised from the LM head (`from_output_embeddings`), row c is the mean output-embedding row of
    label c's words, so the untrained model scores each label by the backbone's own next-token logit of
    its word at the last real token: a zero-shot classifier that training starts from. Without an LM
    head (an encoder loaded with AutoModel), `from_pooled_words` starts the rows from the frozen model's
    reading of each label's words. Shapes: (batch, seq, d) and (batch, seq) -> (batch, num_labels).

    The label words' token ids stay in the state (`label_word_ids`, (labels, words, tokens), -1 where a
    label has fewer words or a word fewer tokens), as do the logit scale and softcap (0: none), so a saved
    head rebuilds on any copy of its backbone, with or without the LM head.
    """

    def __init__(self, config: SKTuningConfig, hidden_size: int, label_word_ids: list[list[list[int]]]):
        super().__init__()
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.head_dropout)
        self.weight = nn.Parameter(torch.zeros(config.num_labels, hidden_size))
        self.bias = nn.Parameter(torch.zeros(config.num_labels))
        self.register_buffer("label_word_ids", _padded(label_word_ids), persistent=True)
        self.register_buffer("logit_scale", torch.tensor(1.0), persistent=True)
        self.register_buffer("logit_softcap", torch.tensor(0.0), persistent=True)

    @property
    def word_token_ids(self) -> list[list[list[int]]]:
        """The label words' token ids, per label, per word (the state's padded tensor, unpadded)."""
        return [[[t for t in word if t >= 0] for word in label if any(t >= 0 for t in word)]
                for label in self.label_word_ids.tolist()]

    @torch.no_grad()
    def from_output_embeddings(self, lm_head: LanguageModelHead) -> "LabelWordHead":
        """Row c (and bias c): the mean over label c's words of the mean over each word's tokens of the LM
        head's row (bias); for one single-token word, exactly that token's row. Scale and softcap as the
        backbone's own logits have them."""
        weight, bias = lm_head.head.weight, getattr(lm_head.head, "bias", None)
        self.weight.copy_(self._word_means(weight.float()))
        if bias is not None:
            self.bias.copy_(self._word_means(bias.float()[:, None])[:, 0])
        self.logit_scale.fill_(lm_head.scale)
        self.logit_softcap.fill_(float(lm_head.softcap or 0.0))
        return self

    @torch.no_grad()
    def from_pooled_words(self, backbone: nn.Module) -> "LabelWordHead":
        """Row c: the mean over label c's words of the frozen backbone's output for the word read alone
        (its tokens, no special tokens), pooled as the inputs are (`pooling`); then every row divided by
        the squared mean row norm, so a pooled input state h of the backbone's usual size scores about
        cos(h, row) per label: initial logits of order 1, not of order |h|^2."""
        device = backbone.get_input_embeddings().weight.device
        rows = []
        was_training = backbone.training
        backbone.eval()
        try:
            for label in self.word_token_ids:
                words = []
                for ids in label:
                    ids = torch.tensor([ids], device=device)
                    mask = torch.ones_like(ids)
                    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                    words.append(pool(hidden, mask, self.pooling)[0])
                rows.append(torch.stack(words).mean(0))
        finally:
            backbone.train(was_training)
        rows = torch.stack(rows)
        self.weight.copy_(rows / rows.norm(dim=1).mean().clamp(min=1e-6).pow(2))
        return self

    def _word_means(self, table: torch.Tensor) -> torch.Tensor:
        """(vocab, k) -> (labels, k): a word's rows averaged over its tokens, then a label's over its words."""
        return torch.stack([torch.stack([table[ids].mean(0) for ids in label]).mean(0)
                            for label in self.word_token_ids]).to(self.weight.device)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = self.dropout(pool(hidden, mask, self.pooling).to(self.weight.dtype))
        logits = F.linear(pooled, self.weight, self.bias) * self.logit_scale
        cap = self.logit_softcap
        safe = torch.where(cap > 0, cap, torch.ones_like(cap))  # no 0/0 in the branch where() drops (NaN grads)
        return torch.where(cap > 0, torch.tanh(logits / safe) * safe, logits)


def _padded(label_word_ids: list[list[list[int]]]) -> torch.Tensor:
    words = max(len(label) for label in label_word_ids)
    tokens = max(len(word) for label in label_word_ids for word in label)
    out = torch.full((len(label_word_ids), words, tokens), -1, dtype=torch.long)
    for i, label in enumerate(label_word_ids):
        for j, word in enumerate(label):
            out[i, j, :len(word)] = torch.as_tensor(word, dtype=torch.long)
    return out
