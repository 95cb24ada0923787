"""SK adapters exported to PEFT (and vLLM's prompt embeddings) compute what SKModel computes."""

import pytest
import torch
from conftest import padded_batch, random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig, get_sk_model
from sktuning.sharing.export import PROMPT_EMBEDS, attach_head, export_peft, export_prompt_embeds

peft = pytest.importorskip("peft")
TEXT = random_ids(5, seed=9)


def trained(mode, adapter="lowrank", arch="llama", task="sequence-classification", wrapper="base"):
    config = SKTuningConfig(mode=mode, text="t", adapter=adapter, task=task, num_labels=3)
    model = SKModel(tiny_backbone(arch, wrapper=wrapper), config, TEXT)
    with torch.no_grad():  # away from the identity, so the export has something to carry
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("mode,adapter,arch", [("prefix", "lowrank", "llama"), ("prefix", "lowrank", "gpt2"),
                                               ("prefix", "authors", "llama"), ("prompt", "lowrank", "llama"),
                                               ("prompt", "linear", "gpt2")])
def test_peft_reproduces_the_hidden_states_and_the_head_the_logits(tmp_path, mode, adapter, arch):
    model = trained(mode, adapter, arch)
    export_peft(model, tmp_path / "peft")
    loaded = peft.PeftModel.from_pretrained(tiny_backbone(arch), tmp_path / "peft").eval()
    ids, mask, _ = padded_batch([6, 4, 5], "right")
    want = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    got = loaded(input_ids=ids, attention_mask=mask).last_hidden_state
    skip = TEXT.numel() if mode == "prompt" else 0
    real = mask.bool()
    torch.testing.assert_close(got[:, skip:][real], want.hidden_states[-1][real], rtol=0, atol=1e-5)
    head = attach_head(loaded, tmp_path / "peft")
    torch.testing.assert_close(head(ids, mask), want.logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["prefix", "prompt"])
def test_causal_lm_export_gives_the_same_logits_and_greedy_generations(tmp_path, mode):
    model = trained(mode, task="causal-lm", wrapper="causal-lm")
    export_peft(model, tmp_path / "peft")
    assert not (tmp_path / "peft" / "sk_head.json").exists()  # the backbone's own LM head: nothing to ship
    loaded = peft.PeftModel.from_pretrained(tiny_backbone("llama", wrapper="causal-lm"), tmp_path / "peft").eval()
    assert type(loaded).__name__ == "PeftModelForCausalLM"
    ids = random_ids(2, 6, seed=3)
    mask = torch.ones_like(ids)
    want = model(input_ids=ids, attention_mask=mask).logits
    got = loaded(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1]:]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # greedy decoding through PEFT's forward picks SKModel.generate's tokens (PEFT 0.21's own generate()
    # on transformers 5.24 does not reproduce its forward for prompt methods: docs/export.md)
    seq = ids
    with torch.no_grad():
        for _ in range(6):
            step = loaded(input_ids=seq, attention_mask=torch.ones_like(seq)).logits[:, -1].argmax(-1)
            seq = torch.cat([seq, step[:, None]], dim=1)
    assert torch.equal(model.generate(ids, mask, max_new_tokens=6), seq)


def test_prompt_embeds_for_vllm_are_the_vectors_to_put_before_the_input(tmp_path):
    from safetensors.torch import load_file

    model = trained("prompt", arch="llama")
    export_prompt_embeds(model, tmp_path / "vllm")
    vectors = load_file(str(tmp_path / "vllm" / PROMPT_EMBEDS))["prompt_embeds"]
    assert vectors.shape == (TEXT.numel(), 32)
    ids = random_ids(1, 6, seed=4)
    # vLLM's prompt_embeds path: the prompt vectors, then the input's own embeddings, through the model
    embeds = torch.cat([vectors[None], model.backbone.get_input_embeddings()(ids)], dim=1)
    got = model.backbone(inputs_embeds=embeds).last_hidden_state[:, TEXT.numel():]
    want = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="no upstream serving engine"):
        export_prompt_embeds(trained("prefix"), tmp_path / "no")


def test_sktune_export_writes_a_folder_peft_loads_and_refuses_a_prefix_for_vllm(tmp_path, tiny_model_dir, capsys):
    from sktuning.cli import main
    from sktuning.sharing.zoo import load_backbone

    backbone, tokenizer = load_backbone(tiny_model_dir)
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(text="w7 w8", num_labels=2))
    model.save_pretrained(tmp_path / "adapter", {"model": tiny_model_dir})
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft",
                 "--output", str(tmp_path / "peft")]) == 0
    assert {"adapter_config.json", "adapter_model.safetensors", "sk_head.json", "sk_head.safetensors"} <= {
        p.name for p in (tmp_path / "peft").iterdir()}
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "vllm-prompt-embeds",
                 "--output", str(tmp_path / "vllm")]) == 2
    assert "no upstream serving engine" in capsys.readouterr().err and not (tmp_path / "vllm").exists()
