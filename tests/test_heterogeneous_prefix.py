"""SK-Prefix on models whose cached keys and values differ in shape: multi-head latent attention (DeepSeek-V3:
keys and values of different head sizes) and per-layer head sizes (Gemma 4's global layers). Each width
gets an adapter of its own, and each layer gets back keys and values of its own shape."""

from __future__ import annotations

import pytest
import torch

import architecture_matrix as matrix
from sktuning import SKModel
from sktuning.core.adapters import GroupedAdapter, LowRankAdapter
from sktuning.core.errors import UsageError
from sktuning.sharing.export import export_peft
from sktuning.inference.multi_adapter import MultiAdapterModel

ARCHS = ["deepseek_v3", "gemma4_text"]


@pytest.fixture(scope="module", params=ARCHS)
def causal(request):
    """The tiny causal LM (its base model is what SK-Prefix wraps for classification)."""
    return request.param, matrix.tiny_model(request.param)


def _trained(backbone, adapter="lowrank", task="sequence-classification", seed=1) -> SKModel:
    return matrix._perturbed(matrix._sk(backbone, "prefix", task=task, adapter=adapter), seed)


@pytest.mark.parametrize("kind", ["lowrank", "linear", "scale", "embedding"])
def test_every_adapter_kind_starts_at_the_backbone_reading_text_and_input(causal, kind):
    model = matrix._sk(causal[1], "prefix", adapter=kind)
    assert isinstance(model.semantic.adapter, GroupedAdapter) and len(model.semantic.adapter.adapters) > 1
    assert matrix._identity(model, "right") <= matrix.ATOL
    assert matrix._identity(model, "left") <= matrix.ATOL


def test_each_layer_gets_keys_and_values_of_its_own_shape(causal):
    model = matrix._sk(causal[1], "prefix")
    prefix = model.semantic.contribution(model.backbone)
    keys, values = prefix.keys, prefix.values
    assert not prefix.stacked
    shapes = {tuple(t.shape) for t in [*keys, *values]}
    assert len(shapes) > 1 and len(keys) == len(values) == len(model.semantic.shape) // 2
    names = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("semantic.")}
    assert names and all(n.startswith("semantic.adapter.adapters.width_") for n in names)


def test_a_model_of_one_shape_keeps_its_single_adapter_and_names():
    model = matrix._sk(matrix.tiny_model("llama"), "prefix")
    assert isinstance(model.semantic.adapter, LowRankAdapter)
    prefix = model.semantic.contribution(model.backbone)
    assert model.semantic.representation.dim() == 3 and prefix.stacked and prefix.keys.dim() == 5
    assert {n for n in model.trainable_state_dict() if n.startswith("semantic.adapter")} == {
        "semantic.adapter.down", "semantic.adapter.up"}


def test_training_moves_every_width_groups_parameters(causal):
    assert matrix._train(matrix._sk(causal[1], "prefix"), "right") is None


def test_save_load_round_trip(causal, tmp_path):
    model = _trained(causal[1])
    ids, mask, _ = matrix._batch("right")
    model.save_pretrained(tmp_path)
    loaded = SKModel.from_pretrained(model.backbone, tmp_path)
    assert torch.equal(matrix._logits(loaded, ids, mask), matrix._logits(model, ids, mask))


@pytest.mark.parametrize("mode", ["prefix", "prompt"])
def test_merged_equals_unmerged(causal, mode):
    if mode == "prompt" and causal[0] == "gemma4_text":
        pytest.skip("Gemma 4 reads token ids past its embeddings: SK-Prompt is refused")
    model = matrix._perturbed(matrix._sk(causal[1], mode, task="causal-lm"), 3)
    ids, mask, _ = matrix._batch("left")
    unmerged = matrix._logits(model, ids, mask)
    merged = matrix._logits(model.merge(), ids, mask)
    assert model.semantic.joins_as_prefix  # merged SK-Prompt too: a key/value prefix of per-layer shapes
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=matrix.ATOL)
    merged_ids = model.generate(ids, mask, max_new_tokens=3)
    model.unmerge()
    assert torch.equal(model.generate(ids, mask, max_new_tokens=3), merged_ids)


def test_generate_equals_greedy_decoding_of_text_and_input(causal):
    model = matrix._sk(causal[1], "prefix", task="causal-lm")
    ids, mask, rows = matrix._batch("left")
    out = model.generate(ids, mask, max_new_tokens=4)
    for b, row in enumerate(rows):
        assert out[b, ids.shape[1]:].tolist() == matrix._greedy(causal[1], torch.cat([matrix.TEXT, row])[None], 4).tolist()


def test_mixed_multi_adapter_batches_give_each_row_its_adapter_alone(causal):
    assert matrix._multi(causal[1], "prefix", "right", "causal-lm") == "ok"
    models = {"a": _trained(causal[1], "lowrank", "causal-lm", 1), "b": _trained(causal[1], "scale", "causal-lm", 2)}
    multi = MultiAdapterModel(causal[1])
    for name, model in models.items():
        multi.add(name, model)
    ids, mask, _ = matrix._batch("left")
    names = ["a", "b", "a"]
    out = multi.generate(ids, mask, names, max_new_tokens=3)
    for row, name in enumerate(names):
        alone = models[name].generate(ids[row:row + 1, -int(mask[row].sum()):], max_new_tokens=3)
        assert out[row, ids.shape[1]:].tolist() == alone[0, -3:].tolist()


def test_peft_export_and_the_authors_prefix_are_refused_clearly(causal, tmp_path):
    with pytest.raises(UsageError, match="differing shapes.*PEFT"):
        export_peft(_trained(causal[1]), tmp_path / "peft")
    with pytest.raises(UsageError, match="differing shapes.*authors"):
        matrix._sk(causal[1], "prefix", adapter="authors")


def test_merged_sk_prompt_falls_back_to_prepending_where_the_cache_cannot_be_a_prefix():
    """A sparse-attention indexer fills its cache for the text but cannot read it back as a prefix."""
    model = matrix._perturbed(matrix._sk(matrix.tiny_model("deepseek_v32"), "prompt", task="causal-lm"), 3)
    ids, mask, _ = matrix._batch("left")
    unmerged = matrix._logits(model, ids, mask)
    merged = matrix._logits(model.merge(), ids, mask)
    assert not model.semantic.joins_as_prefix
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=matrix.ATOL)
