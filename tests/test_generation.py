"""task='causal-lm': loss on target tokens only, and generate() through the semantic text."""

import pytest
import torch
import transformers as tf
from conftest import SMALL, padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig
from sktuning.inference.prediction import predict

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


# Models whose *ForCausalLM.forward changes the logits after the LM head, each its own way.
# (Gemma 2's cap is set below the size of a tiny model's logits, so that the tanh bends them.)
LOGITS_AFTER_THE_HEAD = {
    "granite": (lambda: tf.GraniteConfig(**SMALL, intermediate_size=64, num_key_value_heads=2,
                                         max_position_embeddings=128, logits_scaling=8.0), ["prompt", "prefix"]),
    "cohere": (lambda: tf.CohereConfig(**SMALL, intermediate_size=64, num_key_value_heads=2,
                                       max_position_embeddings=128, logit_scale=0.0625), ["prompt", "prefix"]),
    "gemma2": (lambda: tf.Gemma2Config(**SMALL, intermediate_size=64, num_key_value_heads=2, head_dim=8,
                                       max_position_embeddings=128, final_logit_softcapping=0.02), ["prompt"]),
}


@pytest.mark.parametrize("arch,mode", [(a, m) for a, (_, modes) in LOGITS_AFTER_THE_HEAD.items() for m in modes])
def test_logits_are_the_whole_models_even_where_it_rescales_them_after_the_head(arch, mode):
    def build():
        torch.manual_seed(0)
        return tf.AutoModelForCausalLM.from_config(LOGITS_AFTER_THE_HEAD[arch][0]()).eval()

    model = SKModel(build(), SKTuningConfig(mode=mode, text="t", task="causal-lm"), TEXT).eval()
    ids = random_ids(2, 5)
    want = build()(input_ids=torch.cat([TEXT.expand(2, -1), ids], dim=1)).logits[:, len(TEXT):]
    raw_head = model.lm_head.head(model.backbone(input_ids=ids).last_hidden_state)
    assert not torch.allclose(raw_head, model.lm_head(model.backbone(input_ids=ids).last_hidden_state))
    torch.testing.assert_close(model(input_ids=ids).logits, want, atol=1e-5, rtol=1e-4)


def test_a_model_that_changes_its_logits_unrecognisably_is_refused():
    class Shifted(tf.LlamaForCausalLM):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits + 1.0
            return out

    torch.manual_seed(0)
    shifted = Shifted(tiny_backbone("llama", wrapper="causal-lm").config).eval()
    with pytest.raises(ValueError, match="Shifted changes its logits after the LM head.*not supported"):
        SKModel(shifted, SKTuningConfig(text="t", task="causal-lm"), TEXT)


def test_forward_takes_use_cache_and_refuses_positions_it_sets_itself():
    model = lm("prefix")
    ids = random_ids(2, 5)
    torch.testing.assert_close(model(input_ids=ids, use_cache=False).logits, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="SKModel sets position_ids itself.*pass attention_mask"):
        model(input_ids=ids, position_ids=torch.arange(5)[None])


def test_several_eos_ids_end_rows_and_top_k_zero_means_no_limit():
    model = lm("prefix")
    ids = random_ids(2, 4)
    free = model.generate(ids, max_new_tokens=4)
    first = free[0, 4].item()
    other = next(t for t in range(5, 101) if t not in free[:, 4:].tolist()[1] and t != first)
    out = model.generate(ids, max_new_tokens=4, eos_token_id=[other, first], pad_token_id=0)
    assert out[0, 4:].tolist() == [first, 0, 0, 0]  # row 0 ended on its first token
    assert out[1, 4:].tolist() == free[1, 4:].tolist()
    sampled = [model.generate(ids, max_new_tokens=5, do_sample=True, top_k=k, generator=torch.Generator().manual_seed(3))
               for k in (0, None)]
    assert torch.equal(*sampled)
    with pytest.raises(ValueError, match="top_k must be >= 0"):
        model.generate(ids, do_sample=True, top_k=-1)


def test_predict_points_a_causal_lm_to_generate():
    with pytest.raises(ValueError, match="causal-lm model writes text: use model.generate"):
        predict(lm("prompt"), None, ["some text"])


@pytest.mark.parametrize("arch", ["gpt2", "opt"])  # OPT's table has 2 extra rows it offsets ids by
def test_inputs_past_a_learned_position_table_are_refused_with_the_length_that_fits(arch):
    model = lm("prefix", arch=arch)  # 128 learned positions, 4 taken by the text
    assert model.max_input_tokens == 124 and lm("prefix").max_input_tokens is None  # rotary: no hard limit
    assert model(input_ids=random_ids(1, 124)).logits.shape == (1, 124, 101)
    with pytest.raises(ValueError, match=r"125 input tokens do not fit: the backbone has 128 positions and the text "
                                         r"takes 4; truncate inputs to 124 tokens"):
        model(input_ids=random_ids(1, 125))
    with pytest.raises(ValueError, match="130 prompt and new tokens do not fit"):
        model.generate(random_ids(1, 120), max_new_tokens=10)


def test_inputs_without_tokens_are_refused():
    with pytest.raises(ValueError, match="no tokens \\(sequence length 0\\); pass at least one token per row"):
        lm("prefix")(input_ids=torch.zeros(2, 0, dtype=torch.long))
