import pytest
from conftest import random_ids, tiny_backbone

from sktuning import SKModel, SKTuningConfig


@pytest.mark.parametrize("kwargs,message", [
    (dict(text=""), "text is empty"),
    (dict(text="   "), "text is empty"),
    (dict(mode="suffix"), "Unknown mode 'suffix': choose one of 'prefix', 'prompt'"),
    (dict(task="translation"), "Unknown task 'translation'"),
    (dict(adapter="mlp"), "Unknown adapter 'mlp': choose one of 'embedding', 'lowrank', 'linear', 'scale'"),
    (dict(pooling="max"), "Unknown pooling 'max'"),
    (dict(num_labels=0), "num_labels must be an integer >= 1"),
    (dict(num_labels=1), "num_labels >= 2"),
    (dict(num_labels=2.5), "num_labels must be an integer"),
    (dict(adapter_rank=0), "adapter_rank must be an integer >= 1"),
    (dict(head_dropout=1.0), r"head_dropout must be in \[0, 1\)"),
    (dict(label_names=["a"]), "label_names must be 2 strings"),
    (dict(task="regression", multi_label=True), "multi_label=True applies only"),
])
def test_bad_config_is_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SKTuningConfig(**{"text": "Classify:", **kwargs})


def test_config_json_round_trip_and_unknown_fields():
    config = SKTuningConfig(text="Classify:", mode="prompt", num_labels=3, label_names=["a", "b", "c"])
    assert SKTuningConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"Unknown SKTuningConfig field\(s\) \['colour'\]"):
        SKTuningConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_text_longer_than_the_context_is_rejected():
    long_text = random_ids(128)  # the tiny llama reads 128 positions
    with pytest.raises(ValueError, match="has 128 tokens but the backbone reads at most 128 positions"):
        SKModel(tiny_backbone("llama"), SKTuningConfig(text="t"), long_text)


def test_text_ids_outside_the_vocabulary_are_rejected():
    with pytest.raises(ValueError, match="use the tokenizer that belongs to this backbone"):
        SKModel(tiny_backbone("llama"), SKTuningConfig(text="t"), [3, 5000])




