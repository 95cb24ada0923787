"""head='label-words': the untrained model is the backbone's own zero-shot classifier (the next-token logit
of each label's word after text + input + answer template), and it trains, saves and serves from there."""

import json

import pytest
import torch
import transformers as tf
from conftest import padded_batch, tiny_backbone, tiny_tokenizer
from test_cli import train_args

from sktuning import SKModel, SKTuningConfig
from sktuning.core.config import task_config
from sktuning.core.label_words import tokenize_label_words, tokenize_template
from sktuning.core.label_words import append_template
from sktuning.core.model import get_sk_model
from sktuning.inference.prediction import predict

WORDS = [["w7"], ["w8"], ["w9"]]
TEMPLATE = "w20 w21"  # the tiny tokenizer's vocabulary is w5..w100, one token per word
TEMPLATE_IDS = [20, 21]


def label_word_config(**changes) -> SKTuningConfig:
    settings = dict(text="w10 w11 w12", head="label-words", num_labels=3, label_words=WORDS,
                    answer_template=TEMPLATE, label_names=["a", "b", "c"])
    return SKTuningConfig(**{**settings, **changes})


def label_word_model(arch="llama", mode="prefix", wrapper="causal-lm", **changes):
    backbone = tiny_backbone(arch, wrapper=wrapper)
    return get_sk_model(backbone, tiny_tokenizer(), label_word_config(mode=mode, **changes)).eval(), backbone


def next_token_error(model: SKModel, causal_lm, side: str, word_ids=(7, 8, 9)) -> float:
    """Largest gap between the class scores and the causal LM's next-token logits of the words on the plain
    sequence text + input + template, over a padded batch."""
    ids, mask, rows = padded_batch([6, 2, 4], side)
    scores = model(input_ids=ids, attention_mask=mask).logits
    text, template = torch.tensor(model.text_token_ids), torch.tensor(TEMPLATE_IDS)
    worst = 0.0
    with torch.no_grad():
        for b, row in enumerate(rows):
            want = causal_lm(input_ids=torch.cat([text, row, template])[None]).logits[0, -1, list(word_ids)]
            worst = max(worst, (scores[b] - want).abs().max().item())
    return worst


# -- the invariant --------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", ["prefix", "prompt"])
@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2", "bloom"])
def test_untrained_scores_are_the_backbones_next_token_logits_of_the_label_words(arch, mode, side):
    model, causal_lm = label_word_model(arch, mode)
    assert next_token_error(model, causal_lm, side) <= 1e-5


def test_the_invariant_can_fail_once_the_head_moves():
    model, causal_lm = label_word_model()
    with torch.no_grad():
        model.head.weight[1] += 0.5
    assert next_token_error(model, causal_lm, "right") > 1e-2


def test_scores_do_not_depend_on_padding_side_and_inputs_embeds_match_ids():
    model, _ = label_word_model("gpt2", "prompt")
    ids_r, mask_r, _ = padded_batch([6, 2, 4], "right")
    ids_l, mask_l, _ = padded_batch([6, 2, 4], "left")
    right = model(input_ids=ids_r, attention_mask=mask_r).logits
    torch.testing.assert_close(model(input_ids=ids_l, attention_mask=mask_l).logits, right, atol=1e-5, rtol=1e-5)
    embeds = model.backbone.get_input_embeddings()(ids_r)
    torch.testing.assert_close(model(inputs_embeds=embeds, attention_mask=mask_r).logits, right, atol=1e-5, rtol=1e-5)


def test_template_goes_after_the_last_real_token_and_before_padding():
    model, _ = label_word_model()
    ids = torch.tensor([[5, 6, 0], [5, 6, 7]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    types = torch.tensor([[0, 1, 0], [0, 0, 1]])
    template = model.template_input_ids
    new_ids, _, new_mask, new_types = append_template(template, model.backbone, ids, None, mask, types)
    assert new_ids.tolist() == [[5, 6, 20, 21, 0], [5, 6, 7, 20, 21]]
    assert new_mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert new_types.tolist() == [[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    left_ids, _, left_mask, _ = append_template(template, model.backbone, torch.tensor([[0, 5, 6]]), None,
                                                torch.tensor([[0, 1, 1]]), None)
    assert left_ids.tolist() == [[0, 5, 6, 20, 21]] and left_mask.tolist() == [[0, 1, 1, 1, 1]]


# -- how labels become rows --------------------------------------------------------------------------------
def test_multi_token_words_are_token_means_and_a_shared_first_token_stays_distinct():
    words = [["w7 w8"], ["w7 w9"], ["w10", "w11 w12"]]
    model, causal_lm = label_word_model(label_words=words)
    table = causal_lm.get_output_embeddings().weight
    assert model.head.word_token_ids == [[[7, 8]], [[7, 9]], [[10], [11, 12]]]
    torch.testing.assert_close(model.head.weight[0], (table[7] + table[8]) / 2)
    torch.testing.assert_close(model.head.weight[1], (table[7] + table[9]) / 2)
    torch.testing.assert_close(model.head.weight[2], (table[10] + (table[11] + table[12]) / 2) / 2)
    assert (model.head.weight[0] - model.head.weight[1]).abs().max() > 1e-3


def test_an_lm_head_bias_is_the_class_bias():
    causal_lm = tiny_backbone("phi", wrapper="causal-lm")  # Phi's LM head has a bias (zeros at init)
    bias = causal_lm.get_output_embeddings().bias
    with torch.no_grad():
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)))
    model = get_sk_model(causal_lm, tiny_tokenizer(), label_word_config()).eval()
    torch.testing.assert_close(model.head.bias, bias[[7, 8, 9]])
    assert next_token_error(model, causal_lm, "left") <= 1e-5


@pytest.mark.parametrize("arch", ["granite", "gemma2"])
def test_the_backbones_logit_scale_and_softcap_carry_over(arch):
    """Granite divides its logits by logits_scaling, Gemma 2 soft-caps them: the class scores do too."""
    from test_generation import LOGITS_AFTER_THE_HEAD

    def build():
        torch.manual_seed(0)
        return tf.AutoModelForCausalLM.from_config(LOGITS_AFTER_THE_HEAD[arch][0]()).eval()

    model = get_sk_model(build(), tiny_tokenizer(), label_word_config(mode="prompt")).eval()
    assert float(model.head.logit_scale) != 1.0 or float(model.head.logit_softcap) > 0
    assert next_token_error(model, build(), "left") <= 1e-5


def test_a_model_whose_logits_cannot_be_reproduced_is_refused_with_the_headless_way_out():
    class Shifted(tf.LlamaForCausalLM):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits + 1.0
            return out

    shifted = Shifted(tiny_backbone("llama", wrapper="causal-lm").config).eval()
    with pytest.raises(ValueError, match="Shifted changes its logits .* load the backbone with AutoModel"):
        get_sk_model(shifted, tiny_tokenizer(), label_word_config())


def test_labels_whose_words_tokenize_alike_are_refused():
    with pytest.raises(ValueError, match=r"Labels 'a' and 'c' have label words that tokenize to the same tokens"):
        label_word_model(label_words=[["w7"], ["w8"], ["w7"]])


def test_words_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match=r"Label word 'positive' \(label 'b'\) is not in the tokenizer's vocabulary"):
        label_word_model(label_words=[["w7"], ["positive"], ["w9"]])


def test_words_are_tokenized_as_they_follow_the_template():
    tokenizer = tiny_tokenizer()
    config = label_word_config()
    assert tokenize_template(tokenizer, config) == TEMPLATE_IDS
    assert tokenize_label_words(tokenizer, config) == [[[7]], [[8]], [[9]]]


@pytest.mark.parametrize("changes,message", [
    (dict(head="softmax"), "Unknown head 'softmax'"),
    (dict(task="token-classification"), "needs task='sequence-classification' without multi_label"),
    (dict(multi_label=True), "with multi_label=True"),
    (dict(label_words=[["w7"], ["w8"]]), "one list of words per label, 3 in label-id order"),
    (dict(label_words=None), "needs label_words"),
    (dict(label_words=[["w7"], [], ["w9"]]), r"label_words\[1\] must be a non-empty list .*label 'b'"),
    (dict(label_words=[["w7"], [" "], ["w9"]]), r"label_words\[1\] must be a non-empty list"),
    (dict(head="linear"), "label_words are read only by head='label-words'"),
    (dict(answer_template="  "), "answer_template must be a non-empty text"),
    (dict(head="linear", label_words=None, task="token-classification"), "not task='token-classification'"),
])
def test_bad_label_word_configs_are_refused_with_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        label_word_config(**changes)


def test_config_round_trips_and_old_configs_load_with_the_linear_head():
    config = label_word_config(label_words=[["w7", "w7"], "w8", ["w9 w10"]])
    assert config.label_words == [["w7"], ["w8"], ["w9 w10"]]  # one string is one word; repeats count once
    assert SKTuningConfig.from_dict(json.loads(config.to_json())) == config
    old = {k: v for k, v in SKTuningConfig(text="t").to_dict().items()
           if k not in ("head", "label_words", "answer_template")}
    assert SKTuningConfig.from_dict(old).head == "linear"


def test_a_pooling_other_than_last_is_refused_on_an_lm_head():
    with pytest.raises(ValueError, match="reads the LM head's prediction at the last real token.*pooling='last'"):
        label_word_model(pooling="mean")


def test_the_model_refuses_to_be_built_without_the_word_ids():
    with pytest.raises(ValueError, match=r"get_sk_model\(backbone, tokenizer, config\)"):
        SKModel(tiny_backbone("llama"), label_word_config(), [2, 10, 11])


# -- training, saving, merging, predicting -------------------------------------------------------------------
def test_a_training_step_moves_the_head_and_lowers_the_loss():
    model, _ = label_word_model()
    model.train()
    ids, mask, _ = padded_batch([6, 2, 4, 5], "right")
    labels = torch.tensor([0, 1, 2, 1])
    before = model.head.weight.detach().clone()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    first = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    first.backward()
    optimiser.step()
    optimiser.zero_grad()
    for _ in range(4):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    assert (model.head.weight - before).abs().max() > 1e-3
    assert model(input_ids=ids, attention_mask=mask, labels=labels).loss < first - 1e-3


def test_save_load_round_trip_gives_equal_logits_even_without_the_lm_head(tmp_path):
    model, causal_lm = label_word_model()
    with torch.no_grad():
        model.head.weight.mul_(1.5)
        model.head.bias.add_(0.25)
    ids, mask, _ = padded_batch([6, 2, 4], "left")
    want = model(input_ids=ids, attention_mask=mask).logits
    model.save_pretrained(tmp_path / "adapter")
    loaded = SKModel.from_pretrained(causal_lm, tmp_path / "adapter", tokenizer=tiny_tokenizer())
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits, want)
    assert loaded.template_input_ids.tolist() == TEMPLATE_IDS
    headless = SKModel.from_pretrained(causal_lm.base_model, tmp_path / "adapter")  # e.g. `sktune predict`
    torch.testing.assert_close(headless(input_ids=ids, attention_mask=mask).logits, want)


@pytest.mark.parametrize("field,value,what", [("label_words", [["w7"], ["w8"], ["w30"]], "label words"),
                                              ("answer_template", "w20 w22", "answer template")])
def test_loading_with_a_tokenizer_that_reads_the_words_otherwise_is_refused(field, value, what, tmp_path):
    model, causal_lm = label_word_model()
    model.save_pretrained(tmp_path / "adapter")
    meta_path = tmp_path / "adapter" / "sk_config.json"
    meta = json.loads(meta_path.read_text())
    meta["config"][field] = value  # the saved ids say w9 and w20 w21: as if another tokenizer had made them
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"turns the adapter's {what} into other token ids than it was trained with"):
        SKModel.from_pretrained(causal_lm, tmp_path / "adapter", tokenizer=tiny_tokenizer())


@pytest.mark.parametrize("mode", ["prefix", "prompt"])
def test_merged_model_gives_the_unmerged_logits(mode):
    model, _ = label_word_model("llama", mode)
    ids, mask, _ = padded_batch([6, 2, 4], "right")
    want = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(model.merge()(input_ids=ids, attention_mask=mask).logits, want, atol=1e-5, rtol=1e-5)


def test_predict_labels_inputs_with_the_template_appended():
    model, causal_lm = label_word_model()
    tokenizer = tiny_tokenizer()
    texts = ["w30 w31 w32", "w40"]
    result = predict(model, tokenizer, texts)
    assert [r["text"] for r in result.records] == texts
    for text, record in zip(texts, result.records):
        ids = torch.tensor(model.text_token_ids + tokenizer(text, add_special_tokens=False)["input_ids"]
                           + TEMPLATE_IDS)
        with torch.no_grad():
            want = causal_lm(input_ids=ids[None]).logits[0, -1, [7, 8, 9]].softmax(-1)
        assert record["label"] == ["a", "b", "c"][int(want.argmax())]
        assert list(record["probabilities"].values()) == pytest.approx(want.tolist(), abs=1e-5)


def test_input_length_counts_the_template():
    model, _ = label_word_model("gpt2")  # a learned table of 128 positions
    reserved = len(model.text_token_ids) + len(TEMPLATE_IDS)
    assert model.reserved_tokens == reserved and model.input_length(1000) == 128 - reserved
    with pytest.raises(ValueError, match=f"the text and answer template take {reserved}; truncate inputs to "
                                         f"{128 - reserved} tokens"):
        model(input_ids=torch.full((1, 128 - reserved + 1), 30))


def test_peft_export_refuses_a_label_word_head(tmp_path):
    from sktuning.sharing.export import export_peft

    model, _ = label_word_model()
    with pytest.raises(ValueError, match="PEFT export takes adapters with the linear head and no answer template"):
        export_peft(model, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_the_multi_adapter_model_refuses_a_template():
    from sktuning.inference.multi_adapter import MultiAdapterModel

    model, _ = label_word_model()
    multi = MultiAdapterModel(model.backbone)
    with pytest.raises(ValueError, match="appends an answer template .* serve it on its own"):
        multi.add("words", model)


def test_a_label_word_head_without_a_template_serves_in_the_multi_adapter_model():
    from sktuning.inference.multi_adapter import MultiAdapterModel

    model, _ = label_word_model(answer_template=None)
    ids, mask, _ = padded_batch([6, 2], "right")
    want = model(input_ids=ids, attention_mask=mask).logits
    multi = MultiAdapterModel(model.backbone)
    multi.add("words", model)
    got = multi(ids, mask, ["words", "words"])
    torch.testing.assert_close(torch.stack(list(got)), want, atol=1e-5, rtol=1e-5)


# -- encoders: no LM head ---------------------------------------------------------------------------------------
def test_encoder_rows_start_from_the_pooled_words_differ_per_label_and_train():
    backbone = tiny_backbone("bert")
    config = label_word_config(mode="prompt", pooling="mean")
    model = get_sk_model(backbone, tiny_tokenizer(), config)
    rows = model.head.weight.detach()
    with torch.no_grad():  # row c is the backbone's mean output over w(7 + c) alone, scaled
        alone = torch.stack([backbone(input_ids=torch.tensor([[7 + c]])).last_hidden_state[0, 0] for c in range(3)])
    torch.testing.assert_close(rows, alone / alone.norm(dim=1).mean() ** 2, atol=1e-5, rtol=1e-5)
    assert torch.cdist(rows, rows).triu(1)[0, 1:].min() > 1e-3  # every pair differs
    ids, mask, _ = padded_batch([6, 2, 4], "right")
    types = torch.zeros_like(ids)
    logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert logits.abs().max() < 10  # about cos(h, row): order 1
    labels = torch.tensor([0, 1, 2])
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    first = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels).loss
    for _ in range(5):
        loss = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    assert model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels).loss < first - 1e-3


# -- from a task ---------------------------------------------------------------------------------------------
class _Task:
    name, task, default_text = "toy", "sequence-classification", "w10 w11"
    label_names = ["rotten", "fresh"]
    default_label_words = {"rotten": ["w7"], "fresh": ["w8"]}
    default_answer_template = None


def test_task_config_takes_the_tasks_words_then_the_users_then_label_names():
    config = task_config(_Task(), tiny_tokenizer(), head="label-words")
    assert config.label_words == [["w7"], ["w8"]] and config.answer_template == " Answer:"
    config = task_config(_Task(), tiny_tokenizer(), head="label-words", label_words={"fresh": ["w9", "w10"]},
                         answer_template="w20")
    assert config.label_words == [["w7"], ["w9", "w10"]] and config.answer_template == "w20"
    plain = _Task()
    plain.default_label_words = None
    assert task_config(plain, tiny_tokenizer(), head="label-words").label_words == [["rotten"], ["fresh"]]
    with pytest.raises(ValueError, match=r"names label\(s\) \['good'\] that task 'toy' does not have"):
        task_config(_Task(), tiny_tokenizer(), head="label-words", label_words={"good": ["w9"]})
    with pytest.raises(ValueError, match="read only by --head label-words"):
        task_config(_Task(), tiny_tokenizer(), label_words={"fresh": ["w9"]})


# -- sktune train --head label-words ---------------------------------------------------------------------------
def cli_train_args(model, data, out, *extra):
    """test_cli's short run, 6 steps (argparse keeps the last --steps)."""
    return train_args(model, data, out, "--steps", "6", *extra)


def test_sktune_trains_evaluates_and_predicts_with_label_words(tiny_model_dir, data_dir, tmp_path, capsys):
    from sktuning.cli import main
    from sktuning.core.adapter_format import read_adapter_meta

    out = tmp_path / "run"
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"no": ["w8"], "yes": "w30"}))
    assert main(cli_train_args(tiny_model_dir, data_dir, out, "--head", "label-words", "--label-words-file",
                               str(words), "--label-words", "yes=w7,w9", "--answer-template", "w20 w21")) == 0
    config = read_adapter_meta(out / "adapter")["config"]
    assert config["head"] == "label-words" and config["answer_template"] == "w20 w21"
    assert config["label_names"] == ["no", "yes"] and config["label_words"] == [["w8"], ["w7", "w9"]]  # flags win
    run = json.loads((out / "run.json").read_text())
    assert run["head"] == "label-words" and run["label_words"] == {"no": ["w8"], "yes": ["w7", "w9"]}
    capsys.readouterr()
    assert main(["eval", "--adapter", str(out / "adapter"), "--test", str(data_dir / "test.csv"), "--quiet"]) == 0
    assert json.loads((out / "eval-test-test.json").read_text())["metrics"] == pytest.approx(
        json.loads((out / "metrics.json").read_text())["metrics"])
    capsys.readouterr()
    assert main(["predict", "--adapter", str(out / "adapter"), "w7 w12 w13", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("no", "yes")


@pytest.mark.parametrize("extra,message", [
    (["--label-words", "yes=w7"], "--label-words are read only by --head label-words"),
    (["--head", "label-words", "--label-words", "maybe=w7"], "names label(s) ['maybe'] that task"),
    (["--head", "label-words", "--label-words", "yes=w7", "--label-words", "yes=w9"], "gives label 'yes' twice"),
    (["--head", "label-words"], "Label word 'no' (label 'no') is not in the tokenizer's vocabulary"),
    (["--head", "label-words", "--label-words-file", "{tmp}/missing.json"], "not a readable JSON file"),
    (["--head", "label-words", "--label-words-file", "{tmp}/list.json"], "must map label names to words"),
    (["--head", "label-words", "--answer-template", " "], "--answer-template is empty"),
    (["--head", "label-words", "--task-type", "regression"], "--task-type regression has none"),
])
def test_bad_label_word_options_exit_2_with_one_line(extra, message, tiny_model_dir, data_dir, tmp_path, capsys):
    from sktuning.cli import main

    (tmp_path / "list.json").write_text('[["w7"], ["w8"]]')
    out = tmp_path / "run"
    args = cli_train_args(tiny_model_dir, data_dir, out, *[a.format(tmp=tmp_path) for a in extra])
    assert main(args) == 2
    # transformers draws its weight-loading bar even under --quiet (as for every head); the error is one line
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if "Loading weights" not in line]
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_a_malformed_label_words_option_is_refused_by_the_parser(tiny_model_dir, data_dir, tmp_path, capsys):
    from sktuning.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(cli_train_args(tiny_model_dir, data_dir, tmp_path / "run", "--head", "label-words",
                            "--label-words", "yes"))
    assert exit_.value.code == 2
    assert "'yes' is not LABEL=WORD[,WORD...]" in capsys.readouterr().err


def test_token_task_with_label_words_is_refused_before_the_model_loads(data_dir, tmp_path, capsys):
    from sktuning.cli import main

    args = ["train", "--model", str(tmp_path / "no-such-model"), "--train", str(data_dir / "tags.conll"),
            "--head", "label-words", "--output", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 2  # the missing model would be the error if the model were loaded first
    assert "needs task='sequence-classification'" in capsys.readouterr().err


def test_run_spec_checks_and_round_trips_label_words():
    from sktuning.training.spec import RunSpec

    spec = RunSpec(head="label-words", label_words={"no": ["w8"], "yes": ["w7"]}, answer_template=" Answer:")
    assert RunSpec.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(ValueError, match="--head 'words' is not one of linear, label-words"):
        RunSpec(head="words")
    with pytest.raises(ValueError, match="label 'yes' needs one or more non-empty words"):
        RunSpec(head="label-words", label_words={"yes": []})


def test_smollm2_reads_the_bundled_words_as_single_tokens_after_the_template():
    """The SmolLM2 tokenizer (only the tokenizer) where `make install` converted the model: ' positive' is
    the token that follows 'Answer:', and every bundled word is one token of its own."""
    from transformers import AutoTokenizer

    from sktuning.core.home import sktuning_home

    folder = sktuning_home() / "models" / "smollm2-135m"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 is not converted here (make install)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    words = ["negative", "positive", "neutral", "abbreviation", "description", "entity", "person", "location",
             "number"]
    config = SKTuningConfig(text="t", head="label-words", num_labels=len(words), label_words=[[w] for w in words],
                            answer_template=" Answer:")
    ids = tokenize_label_words(tokenizer, config)
    joint = tokenizer(" Answer: positive", add_special_tokens=False)["input_ids"]
    assert joint == tokenize_template(tokenizer, config) + ids[1][0]
    assert all(len(label) == 1 and len(label[0]) == 1 for label in ids)
    assert [tokenizer.decode(label[0]) for label in ids] == [" " + w for w in words]


def test_a_folder_without_a_trained_lm_head_loads_headless_so_the_start_is_not_random(tiny_model_dir, tmp_path,
                                                                                        caplog):
    from sktuning.sharing.zoo import load_backbone

    headless, _ = load_backbone(tiny_model_dir, lm_head=True)  # saved from AutoModel: no lm_head weights
    assert headless.get_output_embeddings() is None
    assert "holds no trained LM head (lm_head.weight" in caplog.text
    folder = tmp_path / "causal"
    tiny_backbone("llama", wrapper="causal-lm").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    causal_lm, tokenizer = load_backbone(str(folder), lm_head=True)
    want = tiny_backbone("llama", wrapper="causal-lm").get_output_embeddings().weight
    torch.testing.assert_close(causal_lm.get_output_embeddings().weight, want)
    model = get_sk_model(causal_lm, tokenizer, label_word_config())
    torch.testing.assert_close(model.head.weight, want[[7, 8, 9]])
