"""The mode interface: `semantic_text` picks each config's mode, `contribution(backbone)` is exactly what the
model feeds the backbone (prompt vectors or a key/value prefix, merged or not, in the forward and in
generation), `key_value_cache` builds the cache the backbone itself would, and decoding checks its
settings alike for one model and a mixed batch."""

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig
from transformers.cache_utils import DynamicCache

from sktuning.core.authors_prefix import AuthorsPrefix
from sktuning.core.backbone import cache_argument
from sktuning.core.errors import UsageError
from sktuning.core.kv_prefix import KeyValuePrefix, key_value_cache, text_key_values, unflatten_key_values
from sktuning.core.modes import semantic_text
from sktuning.core.prefix import SemanticPrefix
from sktuning.core.prompt import SemanticPrompt
from sktuning.core.semantic import PromptVectors
from sktuning.inference.multi_adapter import MultiAdapterModel
from sktuning.sharing.export import export_prompt_embeds

TEXT = random_ids(4, seed=9)


def trained(arch, mode, adapter="lowrank", task="sequence-classification", wrapper="base", dtype=torch.float32):
    config = SKTuningConfig(mode=mode, text="t", adapter=adapter, task=task, num_labels=3)
    model = SKModel(tiny_backbone(arch, wrapper=wrapper).to(dtype), config, TEXT)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the identity: a contribution that ignored the adapter would show
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def backbone_arguments(model):
    """Every keyword argument the backbone is called with, in order."""
    calls = []
    model.backbone.register_forward_hook(lambda m, a, kw, out: calls.append(dict(kw)), with_kwargs=True)
    return calls


@pytest.mark.parametrize("mode,adapter,expected", [("prompt", "lowrank", SemanticPrompt),
                                                   ("prefix", "linear", SemanticPrefix),
                                                   ("prefix", "authors", AuthorsPrefix),
                                                   ("prefix", "authors-linear", AuthorsPrefix)])
def test_the_factory_builds_each_configs_mode(mode, adapter, expected):
    config = SKTuningConfig(mode=mode, text="t", adapter=adapter)
    assert type(semantic_text(tiny_backbone("llama"), TEXT, config)) is expected
    assert type(SKModel(tiny_backbone("llama"), config, TEXT).semantic) is expected


@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("arch,mode,adapter,kind", [
    ("llama", "prompt", "lowrank", "prompt-on-a-decoder"), ("bert", "prompt", "embedding", "prompt-on-an-encoder"),
    ("llama", "prefix", "lowrank", "prefix"), ("gpt2", "prefix", "scale", "prefix"),
    ("bert", "prefix", "lowrank", "prefix"), ("llama", "prefix", "authors-linear", "prefix")])
def test_the_contribution_is_what_the_forward_feeds_the_backbone(arch, mode, adapter, kind, merged):
    model = trained(arch, mode, adapter)
    if merged:
        model.merge()
    contribution = model.semantic.contribution(model.backbone)
    as_prefix = kind == "prefix" or (kind == "prompt-on-a-decoder" and merged)
    assert isinstance(contribution, KeyValuePrefix if as_prefix else PromptVectors)
    assert model.semantic.joins_as_prefix == as_prefix
    calls = backbone_arguments(model)
    ids, mask, _ = padded_batch([5, 3, 6], "right")
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    fed = calls[-1]  # the input's pass (the authors' SK-Prefix reads its text first, unmerged)
    if as_prefix:
        cache = fed[model.semantic.cache_keyword]
        assert len(cache.layers) == len(contribution.keys) == 2
        for layer, keys, values in zip(cache.layers, contribution.keys, contribution.values):
            assert layer.used and torch.equal(layer.keys, keys.expand(3, -1, -1, -1))
            assert torch.equal(layer.values, values.expand(3, -1, -1, -1))
        assert fed["attention_mask"].shape == (3, contribution.length + 6)
    else:
        m = contribution.vectors.shape[1]
        assert m == TEXT.numel() and torch.equal(fed["inputs_embeds"][:, :m], contribution.vectors.expand(3, -1, -1))
        assert torch.equal(fed["inputs_embeds"][:, m:], model.backbone.get_input_embeddings()(ids))


def own_cache(backbone, **text):
    """The keys and values the backbone itself caches for a text (ids or vectors), per layer."""
    cache = DynamicCache(config=backbone.config)
    first = next(iter(text.values()))
    with torch.no_grad():
        backbone(**text, attention_mask=torch.ones(first.shape[:2], dtype=torch.long), use_cache=True,
                 **{cache_argument(backbone): cache})
    return cache.layers


def test_a_contribution_is_the_text_as_the_backbone_reads_it():
    """Independently of the forward: at the identity SK-Prefix gives the frozen model's own cache of the text
    and SK-Prompt the text's embeddings; merged, SK-Prompt gives the cache of its (trained) vectors."""
    config = SKTuningConfig(mode="prefix", text="t")
    backbone = tiny_backbone("llama")
    prefix = SKModel(backbone, config, TEXT).semantic.contribution(backbone)
    for layer, keys, values in zip(own_cache(backbone, input_ids=TEXT[None]), prefix.keys, prefix.values):
        assert torch.equal(keys, layer.keys) and torch.equal(values, layer.values)
    prompt = SKModel(backbone, SKTuningConfig(mode="prompt", text="t"), TEXT).semantic.contribution(backbone)
    assert torch.equal(prompt.vectors, backbone.get_input_embeddings()(TEXT)[None])
    model = trained("llama", "prompt")
    vectors = model.semantic.contribution(model.backbone).vectors.detach()
    merged = model.merge().semantic.contribution(model.backbone)
    for layer, keys, values in zip(own_cache(model.backbone, inputs_embeds=vectors), merged.keys, merged.values):
        assert torch.equal(keys, layer.keys) and torch.equal(values, layer.values)


def test_the_contribution_takes_gradients_to_the_adapter_unmerged():
    for mode in ("prompt", "prefix"):
        model = trained("llama", mode).train()
        contribution = model.semantic.contribution(model.backbone)
        tensors = [contribution.vectors] if mode == "prompt" else [contribution.keys, contribution.values]
        sum(t.square().sum() for t in tensors).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.semantic.adapter.parameters())


@pytest.mark.parametrize("mode,adapter", [("prefix", "lowrank"), ("prompt", "linear"), ("prefix", "authors")])
def test_generation_prefills_the_same_contribution_in_the_backbones_dtype(mode, adapter):
    model = trained("llama", mode, adapter, task="causal-lm", wrapper="causal-lm", dtype=torch.bfloat16).merge()
    contribution = model.semantic.contribution(model.backbone)
    prefills = []
    keyword = model.semantic.cache_keyword

    def record(module, args, kwargs):  # the cache as the prefill gets it, before the input extends it
        if not prefills:
            prefills.append([(layer.keys.clone(), layer.values.clone()) for layer in kwargs[keyword].layers])

    model.backbone.register_forward_pre_hook(record, with_kwargs=True)
    ids, mask, _ = padded_batch([5, 3], "left")
    model.generate(ids, mask, max_new_tokens=2)
    for (keys, values), want_keys, want_values in zip(prefills[0], contribution.keys, contribution.values):
        assert keys.dtype == torch.bfloat16
        assert torch.equal(keys, want_keys.to(torch.bfloat16).expand(2, -1, -1, -1))
        assert torch.equal(values, want_values.to(torch.bfloat16).expand(2, -1, -1, -1))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_one_cache_builder_gives_the_cache_the_backbone_fills_itself(arch):
    backbone = tiny_backbone(arch)
    ids = random_ids(1, 5, seed=4)
    argument = cache_argument(backbone)
    own = DynamicCache(config=backbone.config)  # what transformers fills for the text itself
    backbone(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, **{argument: own})
    kv, shape = text_key_values(backbone, argument, {}, input_ids=ids)
    keys, values = unflatten_key_values(kv, shape)
    writable = key_value_cache(keys, values, writable=True)
    for built, filled in zip(writable.layers, own.layers):
        assert torch.equal(built.keys, filled.keys) and torch.equal(built.values, filled.values)
    # the continuation reads the built cache as it reads its own, and the read-only cache stays as built
    after = random_ids(1, 3, seed=5)
    mask = torch.ones(1, 8, dtype=torch.long)
    want = backbone(input_ids=after, attention_mask=mask, **{argument: own}).last_hidden_state
    read_only = key_value_cache(keys, values)
    for cache in (key_value_cache(keys, values, writable=True), read_only):
        assert torch.equal(backbone(input_ids=after, attention_mask=mask, **{argument: cache}).last_hidden_state, want)
    assert all(layer.keys.shape[-2] == 5 and layer.used for layer in read_only.layers)


def test_a_merged_prompt_on_a_decoder_exports_no_vectors(tmp_path):
    model = trained("llama", "prompt")
    export_prompt_embeds(model, tmp_path / "before")
    with pytest.raises(UsageError, match="merged into a key/value prefix"):
        export_prompt_embeds(model.merge(), tmp_path / "merged")
    export_prompt_embeds(model.unmerge(), tmp_path / "after")
    assert (tmp_path / "before" / "prompt_embeds.safetensors").read_bytes() == \
        (tmp_path / "after" / "prompt_embeds.safetensors").read_bytes()


@pytest.mark.parametrize("settings,message", [({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
                                              ({"do_sample": True, "temperature": 0.0}, "temperature must be > 0"),
                                              ({"top_k": -1}, "top_k must be >= 0")])
def test_one_model_and_a_mixed_batch_refuse_the_same_decoding_settings(settings, message):
    model = trained("llama", "prefix", task="causal-lm", wrapper="causal-lm")
    multi = MultiAdapterModel(model.backbone)
    multi.add("a", model)
    ids = random_ids(2, 4)
    mask = torch.ones_like(ids)
    with pytest.raises(UsageError, match=message):
        model.generate(ids, mask, **settings)
    with pytest.raises(UsageError, match=message):
        multi.generate(ids, mask, ["a", "a"], **settings)
    mask[0, -1] = 0
    for decode in (lambda: model.generate(ids, mask), lambda: multi.generate(ids, mask, ["a", "a"])):
        with pytest.raises(UsageError, match="set tokenizer.padding_side = 'left'"):
            decode()
