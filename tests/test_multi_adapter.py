"""Many merged SK adapters on one backbone: a batch whose rows belong to different adapters gives each
row what that adapter's own merged model gives it alone."""

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig
from sktuning.inference.multi_adapter import MultiAdapterModel


def adapter(backbone, mode, kind, text_len, seed, **config):
    torch.manual_seed(seed)
    model = SKModel(backbone, SKTuningConfig(mode=mode, text="t", adapter=kind, **config),
                    random_ids(text_len, seed=seed))
    with torch.no_grad():  # away from the identity: each adapter really differs
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return model


def alone(model, ids, mask, row):
    real = mask[row].bool()
    return model(input_ids=ids[row][real][None]).logits[0]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_each_row_of_a_mixed_batch_gets_its_own_adapters_logits(arch, side):
    causal = tiny_backbone(arch, wrapper="causal-lm")
    base = causal.base_model if hasattr(causal, "base_model") else causal
    models = {"sentiment": adapter(causal.get_decoder() if arch == "llama" else base, "prefix", "lowrank", 3, 1,
                                   num_labels=2),
              "topic": adapter(causal.get_decoder() if arch == "llama" else base, "prompt", "linear", 5, 2,
                               num_labels=6),
              "tags": adapter(causal.get_decoder() if arch == "llama" else base, "prefix", "scale", 4, 3,
                              task="token-classification", num_labels=4),
              "lm": adapter(causal, "prefix", "embedding", 2, 4, task="causal-lm")}
    multi = MultiAdapterModel(models["sentiment"].backbone)
    for name, model in models.items():
        multi.add(name, model)
    names = ["sentiment", "topic", "tags", "lm", "topic", "sentiment"]
    ids, mask, _ = padded_batch([5, 3, 6, 4, 2, 6], side)
    got = multi(ids, mask, names)
    for row, name in enumerate(names):
        want = alone(models[name], ids, mask, row)
        mine = got[row]
        if mine.dim() == 2:  # per-token logits: the row's real tokens
            mine = mine[mask[row].bool()]
        torch.testing.assert_close(mine, want, rtol=0, atol=1e-5)


def test_adapters_come_and_go_without_touching_the_backbone():
    backbone = tiny_backbone("llama")
    first = adapter(backbone, "prefix", "lowrank", 3, 1, num_labels=2)
    multi = MultiAdapterModel(backbone)
    multi.add("a", first)
    weights = {k: v.clone() for k, v in backbone.state_dict().items()}
    multi.add("b", adapter(backbone, "prompt", "lowrank", 4, 2, num_labels=3))
    multi.remove("a")
    assert list(multi.adapters) == ["b"]
    assert all(torch.equal(weights[k], v) for k, v in backbone.state_dict().items())
    with pytest.raises(KeyError, match="Unknown adapter"):
        multi(random_ids(1, 3), torch.ones(1, 3, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="another backbone object"):
        multi.add("c", adapter(tiny_backbone("llama"), "prefix", "lowrank", 3, 5, num_labels=2))


def test_an_encoder_runs_each_adapter_group_on_its_own():
    backbone = tiny_backbone("bert")
    models = {"p": adapter(backbone, "prompt", "lowrank", 3, 1, num_labels=2, pooling="mean"),
              "q": adapter(backbone, "prefix", "lowrank", 4, 2, num_labels=3, pooling="mean")}
    multi = MultiAdapterModel(backbone)
    for name, model in models.items():
        multi.add(name, model)
    names = ["p", "q", "p"]
    ids, mask, _ = padded_batch([4, 3, 5], "right")
    got = multi(ids, mask, names)
    for row, name in enumerate(names):
        torch.testing.assert_close(got[row], alone(models[name], ids, mask, row), rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_mixed_batch_generates_what_each_adapter_generates_alone(arch):
    causal = tiny_backbone(arch, wrapper="causal-lm")
    models = {"a": adapter(causal, "prefix", "lowrank", 3, 1, task="causal-lm"),
              "b": adapter(causal, "prompt", "linear", 5, 2, task="causal-lm"),
              "c": adapter(causal, "prefix", "embedding", 2, 3, task="causal-lm")}
    multi = MultiAdapterModel(causal)
    for name, model in models.items():
        multi.add(name, model)
    names = ["a", "b", "c", "b"]
    ids, mask, rows = padded_batch([5, 3, 4, 2], "left")
    out = multi.generate(ids, mask, names, max_new_tokens=6)
    for i, (name, row) in enumerate(zip(names, rows)):
        want = models[name].generate(row[None], max_new_tokens=6)[0, len(row):]
        assert out[i, ids.shape[1]:].tolist() == want.tolist()
