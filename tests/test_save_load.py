import json

import pytest
import torch
from conftest import TINY_CONFIGS, padded_batch, random_ids, tiny_backbone, tiny_tokenizer
from safetensors.torch import load_file

from sktuning import SKModel, SKTuningConfig, get_sk_model
from sktuning.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME

import transformers as tf


def trained(mode="prefix", arch="llama", adapter="lowrank"):
    model = SKModel(tiny_backbone(arch), SKTuningConfig(mode=mode, text="t", adapter=adapter, num_labels=3),
                    random_ids(4, seed=9))
    with torch.no_grad():  # move away from the initial state, so a round trip has something to keep
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("adapter", ["lowrank", "embedding", "linear", "scale"])
@pytest.mark.parametrize("mode", ["prompt", "prefix"])
def test_round_trip_gives_identical_logits(tmp_path, mode, adapter):
    model = trained(mode, adapter=adapter)
    ids, mask, _ = padded_batch([5, 3], "left")
    want = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    loaded = SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "adapter")
    assert torch.equal(loaded(input_ids=ids, attention_mask=mask).logits, want)
    assert loaded.sk_config == model.sk_config
    assert loaded.num_trainable_parameters() == 0  # inference by default
    trainable = SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "adapter", is_trainable=True)
    assert trainable.num_trainable_parameters() == model.num_trainable_parameters()


def test_folder_holds_only_adapter_head_and_config(tmp_path):
    model = trained()
    model.save_pretrained(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [WEIGHTS_NAME, CONFIG_NAME]
    tensors = load_file(str(tmp_path / "a" / WEIGHTS_NAME))
    assert all(k.startswith(("semantic.", "head.")) for k in tensors)
    assert sum(v.numel() for k, v in tensors.items() if k != "semantic.text_input_ids") == \
        model.num_trainable_parameters()
    meta = json.loads((tmp_path / "a" / CONFIG_NAME).read_text())
    assert meta["backbone"]["hidden_size"] == 32 and meta["config"]["mode"] == "prefix"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary leftovers


def test_saving_over_an_existing_folder_replaces_it(tmp_path):
    trained("prompt").save_pretrained(tmp_path / "a")
    model = trained("prefix", adapter="scale")
    model.save_pretrained(tmp_path / "a")
    assert SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a").sk_config.adapter == "scale"


@pytest.mark.parametrize("change,message", [
    (dict(hidden_size=48), "hidden_size=32"),
    (dict(num_hidden_layers=3), "num_hidden_layers=2"),
    (dict(vocab_size=120), "vocab_size=101"),
])
def test_loading_onto_a_different_backbone_fails_clearly(tmp_path, change, message):
    trained().save_pretrained(tmp_path / "a")
    config = TINY_CONFIGS["llama"]()
    for key, value in change.items():
        setattr(config, key, value)
    other = tf.AutoModel.from_config(config)
    with pytest.raises(ValueError, match=message + r".*Load it onto the backbone it was trained with"):
        SKModel.from_pretrained(other, tmp_path / "a")


def test_corrupted_or_missing_files_are_reported(tmp_path):
    trained().save_pretrained(tmp_path / "a")
    weights = tmp_path / "a" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupted"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a")
    (tmp_path / "a" / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a")
    with pytest.raises(ValueError, match="does not exist"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not an SK-Tuning adapter folder"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "empty")


def test_get_sk_model_tokenizes_the_text_with_its_start_token(tmp_path):
    tok = tiny_tokenizer()
    model = get_sk_model(tiny_backbone("llama"), tok, SKTuningConfig(text="w7 w8 w9"))
    assert model.semantic.text_input_ids.tolist() == [2, 7, 8, 9]
    model.save_pretrained(tmp_path / "a")
    assert SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a", tokenizer=tok).sk_config.text == "w7 w8 w9"


def test_loading_with_a_tokenizer_that_reads_the_text_differently_fails(tmp_path):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(text="w7 w8 w9"), [11, 12, 13])
    model.save_pretrained(tmp_path / "a")
    with pytest.raises(ValueError, match="other token ids"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a", tokenizer=tiny_tokenizer())


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path):
    trained().save_pretrained(tmp_path / "a")
    weights = tmp_path / "a" / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: the safetensors header still parses
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum.*corrupted"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a")


def test_truncated_weights_without_a_checksum_fail_on_the_safetensors_header(tmp_path):
    trained().save_pretrained(tmp_path / "a")
    meta_path = tmp_path / "a" / CONFIG_NAME
    meta = json.loads(meta_path.read_text())
    del meta["weights_sha256"]  # as from a tool that wrote no checksum
    meta_path.write_text(json.dumps(meta))
    weights = tmp_path / "a" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file.*truncated or corrupted"):
        SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a")






