"""merge(): the adapter's output frozen into a constant; the same logits, less work."""

import pytest
import torch
from conftest import DECODERS, ENCODERS, padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig


def trained(arch, mode, **kw):
    model = SKModel(tiny_backbone(arch), SKTuningConfig(mode=mode, text="t", adapter="linear", **kw),
                    random_ids(5, seed=9))
    with torch.no_grad():
        for p in model.semantic.adapter.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", ["prompt", "prefix"])
@pytest.mark.parametrize("arch", DECODERS + ENCODERS)
def test_merged_and_unmerged_logits_agree(arch, mode, side):
    if mode == "prefix" and arch in ENCODERS:
        pytest.skip("prefix on encoders is covered by the decoder cases")
    model = trained(arch, mode, task="token-classification", num_labels=3)
    ids, mask, _ = padded_batch([6, 3, 5], side)
    want = model(input_ids=ids, attention_mask=mask).logits
    model.merge()
    got = model(input_ids=ids, attention_mask=mask).logits
    assert got.shape == want.shape
    assert (got - want)[mask.bool()].abs().max() <= 1e-5
    model.unmerge()
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, want)


@pytest.mark.parametrize("arch,expect_prefix", [("llama", True), ("gpt2", True), ("bloom", True), ("bert", False)])
def test_merged_prompt_on_a_decoder_runs_the_backbone_on_input_tokens_only(arch, expect_prefix):
    model = trained(arch, "prompt").merge()
    seen = []
    model.backbone.register_forward_hook(
        lambda m, a, kw, out: seen.append(out.last_hidden_state.shape[1]), with_kwargs=True)
    model(input_ids=random_ids(2, 7))
    assert seen == [7 if expect_prefix else 7 + 5]


@pytest.mark.parametrize("arch,expect_prefix", [("llama", True), ("bert", False)])
def test_causality_probe_holds_in_bf16(arch, expect_prefix):
    model = trained(arch, "prompt").to(torch.bfloat16).merge()
    assert model.semantic.joins_as_prefix == expect_prefix


def test_merged_model_refuses_training_until_unmerged():
    model = trained("llama", "prefix").merge().train()
    with pytest.raises(RuntimeError, match=r"in training mode: call model.eval\(\).*or unmerge\(\) to train it"):
        model(input_ids=random_ids(2, 4), labels=torch.tensor([0, 1]))
    model.unmerge()
    model(input_ids=random_ids(2, 4), labels=torch.tensor([0, 1])).loss.backward()
    assert model.semantic.adapter.weight.grad is not None


def test_merge_survives_save_and_load(tmp_path):
    model = trained("llama", "prompt")
    ids = random_ids(2, 6)
    want = model(input_ids=ids).logits
    model.merge().save_pretrained(tmp_path / "a")
    loaded = SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a").merge()
    assert (loaded(input_ids=ids).logits - want).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_a_merged_embedding_adapter_is_a_copy_and_saves(tmp_path, mode):
    """The embedding adapter returns its own Parameter; merging must not register it a second time."""
    arch = "bert" if mode == "prompt" else "llama"  # an encoder keeps the merged prompt as embeddings
    model = SKModel(tiny_backbone(arch), SKTuningConfig(mode=mode, text="t", adapter="embedding"),
                    random_ids(5, seed=9)).eval().merge()
    assert all("merged" not in name for name, _ in model.named_parameters())
    assert model.semantic.merged.data_ptr() != model.semantic.adapter.weight.data_ptr()
    model.save_pretrained(tmp_path / "a")
    assert (tmp_path / "a").is_dir()
