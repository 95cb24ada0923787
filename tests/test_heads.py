import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig
from sktuning.core.heads import pool


def test_pooling_ignores_padding_on_either_side():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)  # value = flat position
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert pool(hidden, right, "last").flatten().tolist() == [2.0, 5.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, right, "cls").flatten().tolist() == [0.0, 4.0]
    assert pool(hidden, left, "cls").flatten().tolist() == [1.0, 6.0]
    assert pool(hidden, right, "mean").flatten().tolist() == [1.0, 4.5]
    assert pool(hidden, left, "mean").flatten().tolist() == [2.0, 6.5]


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
@pytest.mark.parametrize("pooling", ["last", "mean", "cls"])
def test_sequence_logits_do_not_depend_on_padding_side(mode, pooling):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(mode=mode, text="t", pooling=pooling, num_labels=3),
                    random_ids(4, seed=9)).eval()
    ids_r, mask_r, _ = padded_batch([6, 2, 5], "right")
    ids_l, mask_l, _ = padded_batch([6, 2, 5], "left")
    logits_r = model(input_ids=ids_r, attention_mask=mask_r).logits
    logits_l = model(input_ids=ids_l, attention_mask=mask_l).logits
    assert logits_r.shape == (3, 3)
    torch.testing.assert_close(logits_r, logits_l, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_token_logits_cover_input_tokens_only(mode):
    model = SKModel(tiny_backbone("gpt2"), SKTuningConfig(mode=mode, text="t", task="token-classification",
                                                          num_labels=5), random_ids(4, seed=9))
    ids, mask, _ = padded_batch([6, 3], "right")
    labels = torch.randint(0, 5, ids.shape).masked_fill(mask == 0, -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 6, 5)
    manual = torch.nn.functional.cross_entropy(out.logits[mask.bool()], labels[mask.bool()])
    torch.testing.assert_close(out.loss, manual)


def test_token_loss_ignores_minus_100():
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", task="token-classification", num_labels=4),
                    random_ids(3))
    ids = random_ids(1, 5)
    all_ignored = model(input_ids=ids, labels=torch.full((1, 5), -100)).loss
    assert torch.isnan(all_ignored)  # nothing to learn from, as in torch's cross-entropy
    one = torch.tensor([[-100, 2, -100, -100, -100]])
    out = model(input_ids=ids, labels=one)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[0, 1:2], one[0, 1:2]))


def test_multilabel_uses_bce_and_regression_uses_mse():
    ids = random_ids(3, 5)
    multi = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", num_labels=4, multi_label=True), random_ids(3))
    targets = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]]).float()
    out = multi(input_ids=ids, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, targets))
    reg = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", task="regression", num_labels=1), random_ids(3))
    y = torch.tensor([0.5, 1.5, -2.0])
    out = reg(input_ids=ids, labels=y)
    assert out.logits.shape == (3, 1)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), y))


@pytest.mark.parametrize("config,labels,message", [
    (dict(num_labels=3), torch.zeros(2, 3, dtype=torch.long), r"labels have shape \(2, 3\).*expects \(2,\)"),
    (dict(num_labels=3), torch.tensor([0, 3]), r"labels must lie in \[0, 2\]"),
    (dict(num_labels=3), torch.tensor([0.0, 1.0]), "must be integer class ids"),
    (dict(task="token-classification", num_labels=3), torch.zeros(2, 4, dtype=torch.long), r"expects \(2, 5\)"),
    (dict(num_labels=3, multi_label=True), torch.zeros(2), r"expects \(2, 3\) 0/1 targets"),
    (dict(task="regression", num_labels=1), torch.zeros(2, 2), r"expects \(2,\) or \(2, 1\)"),
])
def test_wrong_labels_are_rejected_with_the_expected_shape(config, labels, message):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", **config), random_ids(3))
    with pytest.raises(ValueError, match=message):
        model(input_ids=random_ids(2, 5), labels=labels)
