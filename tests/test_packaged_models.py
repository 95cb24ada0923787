"""Integration: the real packaged SmolLM2-135M (Llama) and MiniLM-L6 (BERT), loaded offline."""

import pytest
import torch

from sktuning import SKTuningConfig, get_sk_model
from sktuning.sharing.zoo import load_backbone

pytestmark = pytest.mark.integration
TEXT = "Classify the sentiment of this movie review as positive or negative. Review:"


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone("smollm2-135m")


@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_smollm2_identity_with_real_tokenizer(smollm2, mode):
    backbone, tokenizer = smollm2
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode=mode, text=TEXT)).eval()
    reviews = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés from start to finish"]
    tokenizer.padding_side = "left"
    batch = tokenizer(reviews, padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        text = model.semantic.text_input_ids
        for b, review in enumerate(reviews):
            ids = torch.tensor(tokenizer(review, add_special_tokens=False)["input_ids"])
            ref = backbone(input_ids=torch.cat([text, ids])[None]).last_hidden_state[0, len(text):]
            got = out.hidden_states[-1][b, batch["attention_mask"][b].bool()]
            assert (got - ref).abs().max() <= 1e-4


def test_smollm2_prefix_trains_and_leaves_backbone_alone(smollm2):
    backbone, tokenizer = smollm2
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode="prefix", text=TEXT, adapter="lowrank"))
    probe = {k: v.clone() for k, v in list(model.backbone.state_dict().items())[:5]}
    batch = tokenizer(["great fun", "dull and tedious", "a triumph", "a mess"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 1, 0])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(4):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in probe.items())
    assert model.num_trainable_parameters() < 0.005 * model.num_parameters()


def test_minilm_prompt_mode_runs_with_pair_inputs():
    backbone, tokenizer = load_backbone("minilm-l6")
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode="prompt", text="Does the premise entail it?",
                                                             pooling="cls", num_labels=3)).eval()
    batch = tokenizer(["A man sleeps.", "Kids play outside in the sun."], ["Someone rests.", "Nobody is outdoors."],
                      padding=True, return_tensors="pt")
    out = model(**batch, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
