"""The task objects (`sktuning.core.tasks`): each kind's loss against its formula, its label checks,
how its labels batch, how its outputs read, and the registry agreeing with the config's task names."""

import math

import pytest
import torch

from sktuning import SKTuningConfig
from sktuning.core.errors import UsageError
from sktuning.core.tasks import (IGNORE_INDEX, TASK_TYPES, TASKS, CausalLanguageModelling, MultiLabelClassification,
                                 Regression, SingleLabelClassification, Task, TokenClassification, task_named, task_of)

SINGLE, MULTI, TOKEN, REGRESSION, CAUSAL = (task_named("sequence-classification"),
                                            task_named("sequence-classification", multi_label=True),
                                            task_named("token-classification"), task_named("regression"),
                                            task_named("causal-lm"))


def test_every_task_type_has_one_object_and_every_object_a_task_type():
    assert TASK_TYPES == ("sequence-classification", "token-classification", "regression", "causal-lm")
    assert {task.name for task in TASKS} == set(TASK_TYPES)
    assert {type(task) for task in TASKS} == set(Task.__subclasses__())  # no kind left out of TASKS
    assert len({(task.name, task.multi_label) for task in TASKS}) == len(TASKS)
    for name in TASK_TYPES:
        config = SKTuningConfig(text="t", task=name)
        assert task_of(config) is task_named(name) and task_of(config).name == name
    assert task_of(SKTuningConfig(text="t", num_labels=3, multi_label=True)) is MULTI
    assert [type(t) for t in (SINGLE, MULTI, TOKEN, REGRESSION, CAUSAL)] == [
        SingleLabelClassification, MultiLabelClassification, TokenClassification, Regression, CausalLanguageModelling]


def test_unknown_names_and_multi_label_elsewhere_are_refused():
    with pytest.raises(UsageError, match="Unknown task 'translation': choose one of 'sequence-classification'"):
        task_named("translation")
    with pytest.raises(UsageError, match="multi_label=True applies only to task='sequence-classification'"):
        task_named("regression", multi_label=True)


def _log_softmax(row):
    top = max(row)
    total = math.log(sum(math.exp(v - top) for v in row)) + top
    return [v - total for v in row]


def test_single_label_loss_is_cross_entropy():
    logits, labels = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]), torch.tensor([0, 1])
    expected = -(_log_softmax([2.0, 0.5, -1.0])[0] + _log_softmax([0.0, 1.0, 3.0])[1]) / 2
    assert SINGLE.loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_multi_label_loss_is_binary_cross_entropy_with_logits():
    logits, labels = torch.tensor([[2.0, -1.0], [0.5, 0.0]]), torch.tensor([[1, 0], [0, 1]])
    terms = [-math.log(1 / (1 + math.exp(-x))) if y else -math.log(1 - 1 / (1 + math.exp(-x)))
             for x, y in [(2.0, 1), (-1.0, 0), (0.5, 0), (0.0, 1)]]
    assert MULTI.loss(logits, labels).item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_regression_loss_is_mean_squared_error_for_one_or_several_outputs():
    one = REGRESSION.loss(torch.tensor([[1.0], [2.0], [0.0]]), torch.tensor([0.5, 2.0, -1.0]))
    assert one.item() == pytest.approx((0.25 + 0.0 + 1.0) / 3)
    two = REGRESSION.loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    assert two.item() == pytest.approx((1.0 + 4.0) / 2)


def test_token_loss_is_cross_entropy_over_the_tokens_that_are_not_ignored():
    logits = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, -5.0]]])
    labels = torch.tensor([[0, IGNORE_INDEX, 1]])
    expected = -(_log_softmax([1.0, 0.0])[0] + _log_softmax([5.0, -5.0])[1]) / 2
    assert TOKEN.loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert TOKEN.counted_targets(labels).item() == 2
    summed = TOKEN.loss(logits, labels, reduction="sum") / TOKEN.counted_targets(labels)
    assert summed.item() == pytest.approx(expected, rel=1e-6)


def test_causal_lm_loss_predicts_the_next_token():
    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, 9.0, 9.0]]])  # the last position predicts nothing
    labels = torch.tensor([[2, 1, IGNORE_INDEX]])  # the first label has no position before it
    expected = -_log_softmax([3.0, 0.0, 0.0])[1]  # position 0 predicts token 1; position 1's target is ignored
    assert CAUSAL.loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert CAUSAL.counted_targets(labels).item() == 1


def test_losses_are_computed_in_float32_from_half_precision_logits():
    loss = SINGLE.loss(torch.tensor([[2.0, 0.5]], dtype=torch.bfloat16), torch.tensor([0]))
    assert loss.dtype == torch.float32


@pytest.mark.parametrize("task,num_labels,labels,message", [
    (SINGLE, 3, torch.zeros(2, 3, dtype=torch.long), r"shape \(2, 3\) but task 'sequence-classification' with "
                                                     r"num_labels=3 expects \(2,\) integer class ids"),
    (SINGLE, 3, torch.tensor([0, 3]), r"labels must lie in \[0, 2\] \(num_labels=3\), got values from 0 to 3"),
    (SINGLE, 3, torch.tensor([0.0, 1.0]), "must be integer class ids for task 'sequence-classification', got "
                                          "torch.float32"),
    (MULTI, 3, torch.zeros(2), r"expects \(2, 3\) 0/1 targets"),
    (TOKEN, 3, torch.zeros(2, 4, dtype=torch.long), r"expects \(2, 5\) integer tag ids \(-100 to ignore\)"),
    (TOKEN, 3, torch.tensor([[0, -100, 5, 1, 1], [0] * 5]), r"must lie in \[0, 2\].*from 0 to 5"),
    (REGRESSION, 1, torch.zeros(2, 2), r"expects \(2,\) or \(2, 1\) floats"),
    (REGRESSION, 2, torch.zeros(2), r"expects \(2, 2\) floats"),
    (CAUSAL, 1, torch.zeros(2, 5), r"task 'causal-lm' expects \(2, 5\) integer target token ids"),
])
def test_labels_that_cannot_belong_to_the_task_are_refused_naming_what_it_expects(task, num_labels, labels, message):
    with pytest.raises(UsageError, match=message):
        task.check_labels(labels, num_labels, batch=2, seq=5)


@pytest.mark.parametrize("task,num_labels,labels", [
    (SINGLE, 3, torch.tensor([0, 2])),
    (MULTI, 3, torch.tensor([[0, 1, 1], [0, 0, 0]])),
    (TOKEN, 3, torch.tensor([[0, -100, 2, 1, 1], [-100] * 5])),
    (REGRESSION, 1, torch.tensor([0.5, -2.0])),
    (REGRESSION, 1, torch.tensor([[0.5], [-2.0]])),
    (CAUSAL, 1, torch.tensor([[3, 4, 5, -100, -100]] * 2)),
])
def test_labels_that_fit_the_task_pass(task, num_labels, labels):
    task.check_labels(labels, num_labels, batch=2, seq=5)


def _right(width):
    return lambda row, value: list(row) + [value] * (width - len(row))


def test_labels_batch_with_the_tasks_padding_and_dtype():
    tags = TOKEN.collate_labels([[1, 2], [0, IGNORE_INDEX, 3]], _right(3))
    assert tags.tolist() == [[1, 2, IGNORE_INDEX], [0, IGNORE_INDEX, 3]] and tags.dtype == torch.long
    left = TOKEN.collate_labels([[1, 2]], lambda row, value: [value] * (3 - len(row)) + list(row))
    assert left.tolist() == [[IGNORE_INDEX, 1, 2]]
    values = REGRESSION.collate_labels([1, 2.5], _right(0))
    assert values.dtype == torch.float32 and values.tolist() == [1.0, 2.5]
    classes = SINGLE.collate_labels([1, 0], _right(0))
    assert classes.dtype == torch.long and classes.tolist() == [1, 0]
    assert MULTI.collate_labels([[0, 1], [1, 1]], _right(0)).tolist() == [[0, 1], [1, 1]]


def test_outputs_decode_into_the_records_predict_reports():
    names = ["neg", "pos"]
    label, probabilities = SINGLE.decode(torch.tensor([0.0, math.log(3.0)]))
    assert label == 1 and probabilities == pytest.approx([0.25, 0.75])
    assert SINGLE.record({"text": "a"}, {}, label, probabilities, names) == {
        "text": "a", "label": "pos", "probabilities": {"neg": 0.25, "pos": 0.75}}

    chosen, sigmoids = MULTI.decode(torch.tensor([1.0, -1.0, 0.0]))
    assert chosen == [1, 0, 0] and sigmoids == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1)), 0.5])
    record = MULTI.record({"text": "a"}, {}, chosen, sigmoids, ["x", "y", "z"])
    assert record["labels"] == ["x"] and record["probabilities"]["z"] == 0.5

    value, none = REGRESSION.decode(torch.tensor([2.5]))
    assert (value, none) == (2.5, None)
    assert REGRESSION.record({"text": "a"}, {}, value, none, []) == {"text": "a", "prediction": 2.5}

    logits = torch.tensor([[0.0, 5.0], [9.0, 0.0], [5.0, 0.0]])  # three sub-tokens; the second starts no word
    tags, per_token = TOKEN.decode(logits, torch.tensor([True, False, True]))
    assert tags == [1, 0] and len(per_token) == 2
    row = TOKEN.prediction_rows([{"text": "good  film here"}])[0]
    assert row == {"tokens": ["good", "film", "here"]}
    # word 2 had no sub-token left (cut by max_length): no tag
    assert TOKEN.record(row, {"word_ids": [0, -1, 1]}, tags, per_token, names) == {
        "tokens": ["good", "film", "here"], "tags": ["pos", "neg", None]}

    with pytest.raises(UsageError, match="model.generate"):
        CAUSAL.decode(logits)


def test_default_metrics_suit_the_task_and_compute():
    from sktuning.core.metrics import compute_metrics

    assert SINGLE.default_metrics(["a", "b"]) == ["accuracy", "macro_f1"]
    assert REGRESSION.default_metrics([]) == ["pearson", "spearman"]
    assert TOKEN.default_metrics(["O", "B-PER", "I-PER"]) == ["seqeval_f1", "token_accuracy"]
    assert TOKEN.default_metrics(["NOUN", "VERB"]) == ["token_accuracy"]
    assert TOKEN.default_metrics(["O"]) == ["token_accuracy"]  # no entity tag: nothing for seqeval to score
    assert CAUSAL.default_metrics([]) == []
    scores = compute_metrics(MULTI.default_metrics(["x", "y"]), [[1, 0], [1, 1]], [[1, 0], [0, 1]])
    assert scores["accuracy"] == 0.5  # exact label sets: the first row only


def test_config_checks_come_from_the_task():
    with pytest.raises(UsageError, match="Single-label classification needs num_labels >= 2"):
        SKTuningConfig(text="t", num_labels=1)
    SKTuningConfig(text="t", num_labels=1, multi_label=True)
    SKTuningConfig(text="t", num_labels=1, task="regression")
    with pytest.raises(UsageError, match=r"for a sequence-level task \(sequence-classification, regression\), "
                                         "not task='token-classification'"):
        SKTuningConfig(text="t", task="token-classification", answer_template=" Answer:")
    with pytest.raises(UsageError, match="it needs task='sequence-classification' without multi_label, got "
                                         "task='regression'; use head='linear'"):
        SKTuningConfig(text="t", task="regression", num_labels=1, head="label-words", label_words=[["x"]])


def test_what_each_task_decides_elsewhere():
    assert [t.word_level for t in (SINGLE, MULTI, TOKEN, REGRESSION, CAUSAL)] == [False, False, True, False, False]
    assert [t.loss_over_tokens for t in (SINGLE, MULTI, TOKEN, REGRESSION, CAUSAL)] == [False, False, True, False, True]
    assert [t.one_class_per_input for t in TASKS] == [t is SINGLE for t in TASKS]
    assert [t.generates for t in TASKS] == [t is CAUSAL for t in TASKS]
    assert [t.hub_pipeline for t in (SINGLE, MULTI, TOKEN, REGRESSION, CAUSAL)] == [
        "text-classification", "text-classification", "token-classification", "text-classification",
        "text-generation"]


def test_default_texts_name_the_labels_a_data_set_came_with():
    assert SINGLE.default_text(["neg", "neu", "pos"], pair=False) == "Classify this text as neg, neu or pos. Text:"
    assert SINGLE.default_text([str(i) for i in range(11)], pair=True) == "Classify these two texts. Texts:"
    assert MULTI.default_text(["x", "y"], pair=False) == "Label this text with each of x, y that applies. Text:"
    assert TOKEN.default_text(["O", "B-PER"], pair=False) == "Tag each word of this sentence with one of: O, B-PER. Sentence:"
    assert REGRESSION.default_text([], pair=True) == "Give a score for these two texts. Texts:"
    with pytest.raises(UsageError, match="no default text: give one"):
        CAUSAL.default_text([], pair=False)
