"""Where padding sits relative to the semantic text.

Attention layers skip masked positions wherever they are, but a recurrent layer (Mamba, RWKV, the
state-space layers of hybrids) carries its state through them, and some relative-position schemes
(MPT's ALiBi) count them in distances. Joining the text before a left-padded input would put the
padding between the text and the input, where those layers read it. So:

- a forward pass (training, scoring) runs a left-padded batch right-padded, each row's real tokens
  first, and returns its outputs in the caller's order (`right_aligned`, `gather_positions`,
  `restore_positions`);
- SK-Prompt's generation prefill, which must stay left-padded, puts the prompt right before each
  row's first real token instead (`text_adjacent_order`).

Right-padded and unpadded batches are left exactly as they are.
"""

from __future__ import annotations

import torch


def right_aligned(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, seq) positions that put each row's real tokens first, or None when they already are."""
    if attention_mask is None or attention_mask.shape[1] < 2:
        return None
    mask = attention_mask.long()
    if bool((mask[:, 1:] <= mask[:, :-1]).all()):
        return None
    return torch.argsort(1 - mask, dim=1, stable=True)


def gather_positions(tensor: torch.Tensor | None, order: torch.Tensor) -> torch.Tensor | None:
    """`tensor` (batch, seq, ...) with its positions taken in `order` (batch, seq)."""
    if tensor is None:
        return None
    index = order.to(tensor.device).view(*order.shape, *([1] * (tensor.dim() - 2))).expand_as(tensor)
    return tensor.gather(1, index)


def restore_positions(output, order: torch.Tensor, skip: int):
    """Put a backbone output's hidden states back in the caller's order; the first `skip` positions
    (SK-Prompt's text) stay where they are."""
    inverse = torch.argsort(order, dim=1)

    def back(hidden: torch.Tensor) -> torch.Tensor:
        if streams_first(hidden, output.last_hidden_state):  # each stream its own (batch, seq, dim)
            return torch.stack([back(stream) for stream in hidden])
        return torch.cat([hidden[:, :skip], gather_positions(hidden[:, skip:], inverse)], dim=1)

    output.last_hidden_state = back(output.last_hidden_state)
    if getattr(output, "hidden_states", None) is not None:
        output.hidden_states = tuple(back(h) for h in output.hidden_states)
    return output


def streams_first(hidden: torch.Tensor, last_hidden_state: torch.Tensor) -> bool:
    """Hidden states are (batch, seq, ...) (HunYuan V4 keeps (batch, seq, streams, dim)), except where
    parallel streams come first (Gemma 3n's AltUp: (streams, batch, seq, dim)); the last hidden state,
    always (batch, seq, dim), tells which."""
    batch_seq = tuple(last_hidden_state.shape[:2])
    return hidden.dim() == 4 and tuple(hidden.shape[:2]) != batch_seq and tuple(hidden.shape[1:3]) == batch_seq


def text_adjacent_order(attention_mask: torch.Tensor, text_tokens: int) -> torch.Tensor | None:
    """Positions of `[text, input]` that move each row's leading padding before the text, so that the
    text sits right before the first real token; None when no row starts with padding."""
    mask = attention_mask.long()
    leading = mask.cumsum(1) == 0  # padding before the row's first real token
    if not bool(leading.any()):
        return None
    batch = mask.shape[0]
    key = torch.cat([torch.ones(batch, text_tokens, dtype=torch.long, device=mask.device),
                     torch.where(leading, 0, 2)], dim=1)
    return torch.argsort(key, dim=1, stable=True)
