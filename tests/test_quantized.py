"""--quantize: a frozen backbone held in 8 or 4 bits by bitsandbytes (its CPU backend here) trains
SK-Prefix and SK-Prompt through its quantized layers, and the adapter remembers how it was trained."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import transformers as tf

pytest.importorskip("bitsandbytes")
from conftest import padded_batch, tiny_tokenizer  # noqa: E402

from sktuning import SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.scale.quantization import quantized_scheme  # noqa: E402
from sktuning.training.spec import RunSpec  # noqa: E402
from sktuning.sharing.zoo import load_backbone  # noqa: E402


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> str:
    """A tiny Llama wide enough for bitsandbytes' 4-bit blocks (64 values): hidden 128."""
    folder = tmp_path_factory.mktemp("tiny-llama-128")
    torch.manual_seed(0)
    tf.AutoModel.from_config(tf.LlamaConfig(vocab_size=101, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                            num_key_value_heads=2, intermediate_size=256,
                                            max_position_embeddings=128)).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("scheme, layer", [("int8", "Linear8bitLt"), ("nf4", "Linear4bit")])
@pytest.mark.parametrize("mode", ["prefix", "prompt"])
def test_sk_tuning_trains_through_a_quantized_backbone(llama_dir, scheme, layer, mode):
    backbone, tokenizer = load_backbone(llama_dir, quantize=scheme)
    assert quantized_scheme(backbone) == scheme
    assert type(backbone.layers[0].self_attn.q_proj).__name__ == layer
    torch.manual_seed(0)
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode=mode, text="w5 w6", num_labels=2))
    assert not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in backbone.modules())  # no repacking
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert not any(p.requires_grad for p in backbone.parameters())
    ids, mask, _ = padded_batch([6, 4], "left")
    optimizer = torch.optim.AdamW(trainable, lr=3e-2)
    before, losses = [p.detach().clone() for p in trainable], []
    for _ in range(8):
        loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    unchanged = [n for (n, p), q in zip(((n, p) for n, p in model.named_parameters() if p.requires_grad), before)
                 if torch.equal(p, q)]
    assert not unchanged  # gradients reached every part
    # read back as transformers' Trainer reads a checkpoint: the keys the adapter lacks are exactly those
    # SKModel says it leaves out (the quantized layers' own), so the Trainer warns of nothing
    loaded = model.load_state_dict(model.trainable_state_dict(), strict=False)
    assert set(loaded.missing_keys) == set(model._keys_to_ignore_on_save) and not loaded.unexpected_keys


def test_quantized_runs_are_refused_with_sharding_and_unknown_schemes():
    with pytest.raises(ValueError, match="--quantize and --shard do not go together"):
        RunSpec(quantize="nf4", shard="fsdp")
    with pytest.raises(ValueError, match="--quantize 'int4' is not one of int8, nf4"):
        RunSpec(quantize="int4")


@pytest.mark.subprocess
def test_the_cli_trains_quantized_and_predict_loads_the_backbone_as_it_was_trained(llama_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "sktuning.cli", "train", "--model", llama_dir, "--train",
                            str(data_dir / "train.csv"), "--validation", str(data_dir / "validation.csv"), "--test",
                            str(data_dir / "test.csv"), "--text", "w5 w6", "--quantize", "nf4", "--steps", "4",
                            "--eval-every", "2", "--batch-size", "8", "--output", str(out), "--quiet"],
                           capture_output=True, text=True)
    assert train.returncode == 0, train.stderr[-2000:]
    meta = json.loads((out / "adapter" / "sk_config.json").read_text())
    assert meta["training"]["quantize"] == "nf4" and json.loads((out / "run.json").read_text())["quantize"] == "nf4"
    outputs = {}
    for option in ([], ["--quantize", "none"]):
        run = subprocess.run([sys.executable, "-m", "sktuning.cli", "predict", "--adapter", str(out / "adapter"),
                              "w7 w8 w9", *option], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs[bool(option)] = json.loads(run.stdout)["probabilities"]
    assert outputs[False] != outputs[True]  # 4-bit weights by default, full ones on request
    assert outputs[False] == pytest.approx(outputs[True], abs=0.05)
