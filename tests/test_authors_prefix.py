"""The authors' SK-Prefix (adapter='authors'): trainable text embeddings re-read by the frozen model at
every step, with every guarantee the other adapters have."""

import pytest
import torch
from conftest import DECODERS, padded_batch, random_ids, tiny_backbone
from test_identity import max_identity_error
from test_training import train_steps

from sktuning import SKModel, SKTuningConfig

TEXT = random_ids(5, seed=9)
KINDS = ["authors", "authors-linear"]


def authors(arch="llama", adapter="authors", wrapper="base", **kw) -> SKModel:
    config = SKTuningConfig(mode="prefix", text="t", adapter=adapter, **kw)
    return SKModel(tiny_backbone(arch, wrapper=wrapper), config, TEXT).eval()


def backbone_calls(model: SKModel) -> list[tuple[int, int]]:
    """(batch, tokens) of every backbone forward from now on."""
    calls = []

    def hook(module, args, kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        calls.append(tuple(x.shape[:2]))

    model.backbone.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


@pytest.mark.parametrize("adapter", KINDS)
@pytest.mark.parametrize("arch", DECODERS)
def test_starts_at_identity(arch, adapter):
    model = authors(arch, adapter)
    assert max_identity_error(model, TEXT, "left") <= 1e-4


def test_trains_the_text_embeddings_through_the_frozen_model_once_per_step_at_batch_size_one():
    model = authors(adapter="authors-linear")
    start = model.semantic.adapter.embeddings.detach().clone()
    words = model.backbone.get_input_embeddings().weight[TEXT]
    assert torch.equal(start, words)  # initialised from the word embeddings
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    calls = backbone_calls(model)
    losses = train_steps(model, steps=15, lr=3e-2)
    assert losses[-1] < 0.5 * losses[0]
    assert calls[:2] == [(1, 5), (4, 6)] and len(calls) == 2 * 15  # the text (batch 1), then the batch
    assert not torch.equal(model.semantic.adapter.embeddings, start)
    assert not torch.equal(model.semantic.adapter.head_map.weight, torch.eye(8))
    assert all(torch.equal(backbone[k], v) for k, v in model.backbone.state_dict().items())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"semantic.adapter.embeddings", "semantic.adapter.head_map.weight",
                         "semantic.adapter.head_map.bias", "head.classifier.weight", "head.classifier.bias"}
    assert model.num_trainable_parameters() == 5 * 32 + 8 * 8 + 8 + 32 * 2 + 2


def test_evaluation_reuses_the_text_pass_until_a_parameter_changes():
    model = authors()
    ids, mask, _ = padded_batch([5, 3], "left")
    calls = backbone_calls(model)
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask).logits
        again = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(first, again) and calls == [(1, 5), (2, 5), (2, 5)]
    with torch.no_grad():
        model.semantic.adapter.embeddings.add_(0.1)  # as an optimiser step does
        moved = model(input_ids=ids, attention_mask=mask).logits
    assert calls[-2:] == [(1, 5), (2, 5)] and not torch.allclose(moved, first)


def test_merge_freezes_the_prefix_and_skips_the_text_pass():
    model = authors()
    with torch.no_grad():
        model.semantic.adapter.embeddings.add_(torch.randn_like(model.semantic.adapter.embeddings) * 0.1)
    ids, mask, _ = padded_batch([5, 3], "right")
    want = model(input_ids=ids, attention_mask=mask).logits
    model.merge()
    calls = backbone_calls(model)
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, want, rtol=0, atol=1e-6)
    assert calls == [(2, 5)]
    model.unmerge()
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("adapter", KINDS)
def test_save_and_load_round_trip(tmp_path, adapter):
    model = authors(adapter=adapter, num_labels=3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    ids, mask, _ = padded_batch([5, 3], "left")
    want = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    loaded = SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "adapter")
    assert loaded.sk_config.adapter == adapter
    assert torch.equal(loaded(input_ids=ids, attention_mask=mask).logits, want)


def test_generates_what_the_backbone_generates_from_text_plus_input():
    model = authors(wrapper="causal-lm", task="causal-lm")
    reference = tiny_backbone("llama", wrapper="causal-lm")
    ids, mask, rows = padded_batch([5, 3], "left")
    out = model.generate(ids, mask, max_new_tokens=5)
    for b, row in enumerate(rows):
        want = reference.generate(torch.cat([TEXT, row])[None], max_new_tokens=5, do_sample=False,
                                  pad_token_id=0)[0, len(TEXT) + len(row):]
        assert out[b, 5:].tolist() == want.tolist()


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = authors(adapter="authors-linear").train()
        if checkpointing:
            model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        ids, mask, _ = padded_batch([6, 4], "left")
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1])).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7)


def test_sk_prompt_refuses_it_and_says_what_it_would_be():
    with pytest.raises(ValueError, match="needs mode 'prefix'; for SK-Prompt their trainable text embeddings are "
                                         "the 'embedding' adapter"):
        SKTuningConfig(mode="prompt", text="t", adapter="authors")
    from sktuning.training.spec import RunSpec

    with pytest.raises(ValueError, match="--adapter 'authors-linear' is the authors' SK-Prefix"):
        RunSpec(mode="prompt", adapter="authors-linear")


def test_zero3_sharding_is_refused_before_anything_loads():
    from sktuning.training.spec import RunSpec

    with pytest.raises(ValueError, match="cannot train on a ZeRO-3 sharded backbone .* use --shard fsdp"):
        RunSpec(adapter="authors", shard="zero3")
    RunSpec(adapter="authors", shard="fsdp")  # FSDP is fine (tests/test_distributed.py trains it)
