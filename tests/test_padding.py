"""sktuning.core.padding: the orders that keep padding away from the semantic text, and their inverses."""

import torch

from sktuning.core.padding import gather_positions, right_aligned, text_adjacent_order


def test_right_padded_and_unpadded_batches_are_left_as_they_are():
    assert right_aligned(torch.tensor([[1, 1, 1], [1, 1, 0]])) is None
    assert right_aligned(torch.ones(2, 4, dtype=torch.long)) is None
    assert text_adjacent_order(torch.tensor([[1, 1, 0]]), 2) is None


def test_left_padding_runs_right_aligned_and_comes_back():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    ids = torch.tensor([[0, 0, 7, 8], [1, 2, 3, 4], [0, 5, 6, 9]])
    order = right_aligned(mask)
    assert gather_positions(ids, order).tolist() == [[7, 8, 0, 0], [1, 2, 3, 4], [5, 6, 9, 0]]
    assert gather_positions(mask, order).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]
    embeds = torch.randn(3, 4, 5)
    back = gather_positions(gather_positions(embeds, order), torch.argsort(order, dim=1))
    assert torch.equal(back, embeds)


def test_the_text_moves_after_a_rows_leading_padding_only():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])  # one left-padded row, one right-padded
    order = text_adjacent_order(mask, 2)
    # positions 0-1 are the text, 2-5 the input
    assert order.tolist() == [[2, 3, 0, 1, 4, 5], [0, 1, 2, 3, 4, 5]]


def test_hidden_states_with_parallel_streams_come_back_per_stream():
    """Gemma 3n returns (streams, batch, seq, dim) hidden states: each stream is put back in order."""
    from types import SimpleNamespace

    from sktuning.core.padding import restore_positions

    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    order = right_aligned(mask)
    streams = torch.randn(4, 2, 3, 5)
    out = SimpleNamespace(last_hidden_state=gather_positions(streams[0], order),
                          hidden_states=(torch.stack([gather_positions(s, order) for s in streams]),))
    back = restore_positions(out, order, skip=0)
    assert torch.equal(back.last_hidden_state, streams[0]) and torch.equal(back.hidden_states[0], streams)
    # streams after the sequence (HunYuan V4: batch, seq, streams, dim) are ordinary trailing dimensions
    late = torch.randn(2, 3, 4, 5)
    out = SimpleNamespace(last_hidden_state=gather_positions(late[:, :, 0], order),
                          hidden_states=(gather_positions(late, order),))
    assert torch.equal(restore_positions(out, order, skip=0).hidden_states[0], late)
