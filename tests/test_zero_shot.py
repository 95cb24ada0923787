"""Zero-shot scoring with the untrained label-word model, and its calibration against content-free inputs."""

import json

import pytest
import torch
from conftest import tiny_backbone, tiny_tokenizer
from test_label_words import label_word_config, next_token_error

from sktuning.cli import main
from sktuning.inference.zero_shot import calibrate_to_content_free, zero_shot_model


def content_free_probabilities(model, texts):
    tok = tiny_tokenizer()
    rows = [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    probs = [model(input_ids=r[None]).logits.softmax(-1)[0] for r in rows]
    return torch.stack(probs)


def test_the_zero_shot_model_is_the_backbones_own_next_token_scores():
    causal_lm = tiny_backbone("llama", wrapper="causal-lm")
    model = zero_shot_model(causal_lm, tiny_tokenizer(), label_word_config())
    assert next_token_error(model, causal_lm, "right") <= 1e-5 and not model.training


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_calibration_makes_content_free_inputs_score_every_label_alike(arch):
    texts = ("w40", "w41 w42")  # the tiny vocabulary's stand-ins for 'N/A' and '[MASK]'
    model = zero_shot_model(tiny_backbone(arch, wrapper="causal-lm"), tiny_tokenizer(), label_word_config())
    with torch.no_grad():
        before = content_free_probabilities(model, texts).mean(0)
        weight = model.head.weight.clone()
        shift = calibrate_to_content_free(model, tiny_tokenizer(), texts)
    assert (before - 1 / 3).abs().max() > 1e-3  # the untrained scores do prefer some label
    # each text alone need not be uniform; the average of their pre-transform scores is, so for a
    # single content-free text the calibrated probabilities are exactly uniform
    assert shift.sum().abs() < 1e-5 and torch.equal(model.head.weight, weight)  # only the bias moved
    single = zero_shot_model(tiny_backbone(arch, wrapper="causal-lm"), tiny_tokenizer(), label_word_config(),
                             calibrate=False)
    with torch.no_grad():
        calibrate_to_content_free(single, tiny_tokenizer(), texts[:1])
        uniform = content_free_probabilities(single, texts[:1])[0]
    assert torch.allclose(uniform, torch.full((3,), 1 / 3), atol=1e-5)


def test_zero_shot_needs_the_label_word_head():
    with pytest.raises(ValueError, match="Zero-shot scoring needs head='label-words'"):
        zero_shot_model(tiny_backbone("llama", wrapper="causal-lm"), tiny_tokenizer(),
                        label_word_config(head="linear", label_words=None, answer_template=None))


def test_sktune_eval_zero_shot_scores_a_file_both_ways(tiny_model_dir, data_dir, tmp_path, capsys):
    common = ["eval", "--zero-shot", "--model", tiny_model_dir, "--test", str(data_dir / "test.csv"),
              "--label-words", "no=w8", "--label-words", "yes=w30", "--answer-template", "w20"]
    plain, calibrated = tmp_path / "plain.json", tmp_path / "calibrated.json"
    assert main(common + ["--output-file", str(plain)]) == 0
    assert main(common + ["--calibrate", "--output-file", str(calibrated)]) == 0
    printed = capsys.readouterr().out
    assert "zero-shot: accuracy" in printed and "zero-shot (calibrated): accuracy" in printed
    plain, calibrated = json.loads(plain.read_text()), json.loads(calibrated.read_text())
    assert plain["zero_shot"] and not plain["calibrated"] and calibrated["calibrated"]
    assert plain["examples"] == calibrated["examples"] == 32
    assert f"accuracy {plain['metrics']['accuracy']:.4f}" in printed


@pytest.mark.parametrize("args,message", [
    (["--calibrate", "--adapter", "x"], "--calibrate goes with --zero-shot"),
    (["--zero-shot", "--adapter", "x"], "--zero-shot scores the untrained model"),
    (["--adapter", "x", "--answer-template", "w20"], "--answer-template go with --zero-shot"),
    ([], "Give --adapter DIR (a trained adapter), or --zero-shot"),
])
def test_eval_options_that_do_not_fit_exit_2_with_one_line(args, message, capsys):
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
