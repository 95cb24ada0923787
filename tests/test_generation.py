"""task='causal-lm': loss on target tokens only, and generate() through the semantic text."""

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig

TEXT = random_ids(4, seed=9)


def lm(mode, arch="llama", adapter="lowrank"):
    return SKModel(tiny_backbone(arch, wrapper="causal-lm"), SKTuningConfig(mode=mode, text="t", task="causal-lm",
                                                                            adapter=adapter), TEXT).eval()


@pytest.mark.parametrize("arch", ["llama", "gpt2", "falcon"])
@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_identity_adapter_generates_what_the_backbone_generates_from_text_plus_input(mode, arch):
    model = lm(mode, arch)
    reference = tiny_backbone(arch, wrapper="causal-lm")
    ids, mask, rows = padded_batch([5, 3, 4], "left")
    out = model.generate(ids, mask, max_new_tokens=6)
    assert out.shape == (3, 5 + 6) and torch.equal(out[:, :5], ids)
    for b, row in enumerate(rows):
        want = reference.generate(torch.cat([TEXT, row])[None], max_new_tokens=6, do_sample=False,
                                  pad_token_id=0)[0, len(TEXT) + len(row):]
        assert out[b, 5:].tolist() == want.tolist()


def test_merged_model_generates_the_same():
    model = lm("prompt")
    ids, mask, _ = padded_batch([5, 2], "left")
    want = model.generate(ids, mask, max_new_tokens=5)
    assert torch.equal(model.merge().generate(ids, mask, max_new_tokens=5), want)


def test_loss_counts_target_tokens_only():
    model = lm("prefix")
    ids = random_ids(2, 6)
    labels = ids.clone()
    labels[:, :4] = -100  # the source: no loss
    out = model(input_ids=ids, labels=labels)
    assert out.logits.shape == (2, 6, 101)
    manual = torch.nn.functional.cross_entropy(out.logits[:, 3:5].reshape(-1, 101), ids[:, 4:6].reshape(-1))
    torch.testing.assert_close(out.loss, manual)


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_short_training_steers_generation_towards_the_target(mode):
    """Train the adapter to answer every input with w42; generation follows, the backbone is untouched."""
    model = lm(mode, adapter="linear").train()
    target = 42
    sources = random_ids(32, 5, seed=4)
    ids = torch.cat([sources, torch.full((32, 1), target)], dim=1)
    labels = torch.full_like(ids, -100)
    labels[:, -1] = target
    test_ids = random_ids(8, 5, seed=5)

    def target_share():
        return (model.generate(test_ids, max_new_tokens=1)[:, -1] == target).float().mean()

    before = target_share()
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    for _ in range(60):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = target_share()
    assert before < 0.5 <= after  # unseen inputs now mostly continue with the target
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in backbone_before.items())
    assert all(k.startswith(("semantic.", "head.")) for k in model.trainable_state_dict())


def test_generation_errors_are_clear():
    with pytest.raises(ValueError, match="language-modelling head.*AutoModelForCausalLM"):
        SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", task="causal-lm"), TEXT)
    model = lm("prefix")
    ids, mask, _ = padded_batch([5, 3], "right")
    with pytest.raises(ValueError, match="left padding"):
        model.generate(ids, mask)
    classifier = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t"), TEXT)
    with pytest.raises(ValueError, match="task='causal-lm'"):
        classifier.generate(ids)


def test_sampling_is_reproducible_with_a_generator():
    model = lm("prefix")
    ids = random_ids(2, 4)
    a = model.generate(ids, max_new_tokens=5, do_sample=True, top_k=10, generator=torch.Generator().manual_seed(0))
    b = model.generate(ids, max_new_tokens=5, do_sample=True, top_k=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_generation_on_a_bf16_backbone(mode, merged):
    model = lm(mode)
    model.backbone.to(torch.bfloat16)
    model.lm_head.to(torch.bfloat16)
    if merged:
        model.merge()
    out = model.generate(random_ids(2, 4), max_new_tokens=3)
    assert out.shape == (2, 7)
