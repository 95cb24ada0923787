"""Few-shot runs: K examples per class drawn per seed (one rule for `sktune train` and the bench), the
bench's few-shot methods, and test scores at pre-registered steps."""

import json
import random
from collections import Counter

import datasets
import pytest

from sktuning.data.subsets import SubsetRule, draw_subsets, few_shot_sample


def labelled(n: int, labels: int = 3, seed: int = 0) -> datasets.Dataset:
    rng = random.Random(seed)
    return datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(n)],
                                       "label": [rng.randrange(labels) for _ in range(n)]})


class Data:  # the parts of TaskData that subsets read
    def __init__(self, task="sequence-classification", labels=3):
        self.name, self.task, self.label_names = "toy", task, [f"l{i}" for i in range(labels)]
        self.splits = datasets.DatasetDict(train=labelled(300, labels), validation=labelled(90, labels, 1),
                                           test=labelled(50, labels, 2))


def test_k_shots_per_class_drawn_per_seed_and_reproducible():
    data = Data()
    one = draw_subsets(data, SubsetRule(seed=1, shots=8))
    assert Counter(one["train"]["label"]) == {0: 8, 1: 8, 2: 8}
    assert Counter(one["validation"]["label"]) == {0: 8, 1: 8, 2: 8}
    assert len(one["test"]) == 50  # the test split stays whole
    again = draw_subsets(data, SubsetRule(seed=1, shots=8))
    assert one["train"]["text"] == again["train"]["text"]  # a pure function of the subset seed
    other = draw_subsets(data, SubsetRule(seed=2, shots=8))
    assert set(one["train"]["text"]) != set(other["train"]["text"])
    assert len(set(one["train"]["text"])) == 24  # no row twice
    # the classes come in a shuffled order, not in blocks
    assert one["train"]["label"] != sorted(one["train"]["label"])


def test_one_classes_sample_does_not_depend_on_another_classes_rows():
    base = labelled(300)
    more = datasets.concatenate_datasets([base, datasets.Dataset.from_dict({"text": ["extra"] * 5,
                                                                             "label": [2] * 5})])
    a, b = few_shot_sample(base, 4, 3, 3, "train"), few_shot_sample(more, 4, 3, 3, "train")
    zeros = lambda d: sorted(t for t, y in zip(d["text"], d["label"]) if y == 0)  # noqa: E731
    assert zeros(a) == zeros(b)


def test_without_validation_shots_no_validation_rows():
    rows = draw_subsets(Data(), SubsetRule(seed=0, shots=4, shots_validation=False))
    assert len(rows["validation"]) == 0 and len(rows["train"]) == 12


def test_a_cut_test_split_is_the_same_for_every_subset_seed():
    data = Data()
    cuts = [draw_subsets(data, SubsetRule(seed=s, max_train=20, max_test=10))["test"]["text"] for s in (0, 5)]
    assert cuts[0] == cuts[1]
    shots = draw_subsets(data, SubsetRule(seed=7, shots=2, max_test=10))["test"]["text"]
    assert shots == cuts[0]
    trains = [draw_subsets(data, SubsetRule(seed=s, max_train=20))["train"]["text"] for s in (0, 5)]
    assert trains[0] != trains[1]  # the subset seed draws the training subset


def test_bad_few_shot_requests_name_the_fix():
    with pytest.raises(ValueError, match="fewer than 200 examples of some classes.*lower --shots"):
        draw_subsets(Data(), SubsetRule(shots=200))
    with pytest.raises(ValueError, match="single-label sequence classification.*max-train-examples"):
        draw_subsets(Data(task="regression"), SubsetRule(shots=4))
    with pytest.raises(ValueError, match="either shots"):
        SubsetRule(shots=4, max_train=10)
    with pytest.raises(ValueError, match="shots must be >= 1"):
        SubsetRule(shots=0)


def test_run_spec_checks_the_few_shot_options_before_anything_loads():
    from sktuning.training.spec import RunSpec

    assert RunSpec(shots=16, seed=3).subset_rule() == SubsetRule(seed=3, shots=16)
    assert RunSpec(shots=16, seed=3, subset_seed=9).subset_rule().seed == 9
    with pytest.raises(ValueError, match="leave out --max-train-examples"):
        RunSpec(shots=16, max_train_examples=100)
    with pytest.raises(ValueError, match="goes with --shots"):
        RunSpec(shots_validation=False)
    with pytest.raises(ValueError, match="--patience stops on validation"):
        RunSpec(shots=4, shots_validation=False, patience=2)
    with pytest.raises(ValueError, match="--subset-seed must be a whole number"):
        RunSpec(subset_seed=1.5)


@pytest.fixture(scope="module")
def word_labels(tmp_path_factory):
    """CSV files whose labels are words of the tiny tokenizer (w8, w9), so a label-word head can read them."""
    folder = tmp_path_factory.mktemp("word-labels")
    rng = random.Random(0)
    for split, n in (("train", 60), ("validation", 30), ("test", 20)):
        lines = ["text,label"] + [f"{' '.join(f'w{rng.randint(10, 99)}' for _ in range(5))},{rng.choice(['w8', 'w9'])}"
                                  for _ in range(n)]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def few_shot_settings(tiny_model_dir, word_labels):
    from sktuning.bench import BenchSettings

    return BenchSettings(model=tiny_model_dir, task="words", steps=4, batch_size=4, eval_every=2, max_test=None,
                         max_length=16, shots=4, test_steps=[0, 2, 4], train=str(word_labels / "train.csv"),
                         validation=str(word_labels / "validation.csv"), test=str(word_labels / "test.csv"))


@pytest.mark.parametrize("method", ["sk-prefix-lowrank-lw", "sk-prompt-lowrank-lw", "sk-prefix-unrelated-lw",
                                    "sk-prefix-random-ids-lw", "full-ft-lw", "lora"])
def test_every_few_shot_method_scores_test_at_the_pre_registered_steps(few_shot_settings, method):
    from sktuning.bench import run_one

    record = json.loads(json.dumps(run_one(few_shot_settings, method, 1e-2, 0)))
    assert record["train_examples"] == 8 and record["validation_examples"] == 8  # 4 per class, 2 classes
    assert sorted(record["test_at_steps"], key=int) == ["0", "2", "4"]
    assert record["test"] == record["test_at_steps"]["4"]["test"]  # the last step stands for the run
    assert len(record["test_predictions"]) == 20
    if method == "full-ft-lw":  # the whole backbone trains; the text stays the frozen identity
        assert record["trainable"] > 0.9 * record["total"]
    elif method != "lora":
        assert record["trainable"] < 0.2 * record["total"]


def test_the_label_word_arm_starts_as_its_zero_shot_model_and_step_zero_is_scored_once(few_shot_settings):
    from sktuning.bench import run_one

    first = run_one(few_shot_settings, "sk-prefix-lowrank-lw", 1e-2, 0)
    second = run_one(few_shot_settings, "sk-prefix-lowrank-lw", 1e-2, 1)
    assert "0" in first["test_at_steps"] and "0" not in second["test_at_steps"]
    prompt = run_one(few_shot_settings, "sk-prompt-lowrank-lw", 1e-2, 0)
    # identity adapters: both modes read the text alike at step 0, so they predict alike
    assert first["test_at_steps"]["0"]["test_predictions"] == prompt["test_at_steps"]["0"]["test_predictions"]


def test_random_ids_replace_every_word_and_keep_the_special_tokens(few_shot_settings):
    from sktuning.bench.settings import random_text_ids
    from sktuning.sharing.zoo import load_backbone

    _, tokenizer = load_backbone(few_shot_settings.model)
    text = tokenizer("w10 w11 w12 w13 w14 w15")["input_ids"]
    one, again, other = (random_text_ids(tokenizer, text, s) for s in (0, 0, 1))
    assert one == again and one != other and len(one) == len(text)
    assert one[0] == text[0] == tokenizer.bos_token_id
    assert not set(one[1:]) & set(tokenizer.all_special_ids)


def test_the_few_shot_suite_runs_per_k_and_reports_paired_comparisons(tiny_model_dir, word_labels, tmp_path,
                                                                      in_process):
    """`sktune bench --shots`: one log per K, every seed its own sample, and few-shot.md with the table
    at the pre-registered steps and the seed-paired comparisons (runs in this process, as their
    subprocesses would return them)."""
    from sktuning.cli.main import main

    files = [f"--{split}={word_labels / (split + '.csv')}" for split in ("train", "validation", "test")]
    code = main(["bench", "--shots", "2", "4", "--model", tiny_model_dir, *files, "--steps", "4", "--set", "batch_size=4", "--no-grid",
                 "--methods", "sk-prefix-lowrank-lw", "head-only", "--seeds", "0", "1", "2", "--output",
                 str(tmp_path)])
    assert code == 0
    logs = sorted(p.name for p in tmp_path.glob("*.runs.jsonl"))
    assert logs == [f"{tiny_model_dir.rsplit('/', 1)[-1]}-train-{k}-shot.runs.jsonl" for k in (2, 4)]
    records = [json.loads(line) for line in (tmp_path / logs[1]).read_text().splitlines()]
    assert len(records) == 6 and {r["train_examples"] for r in records} == {8}
    assert {tuple(sorted(r["test_at_steps"], key=int)) for r in records if r["seed"] == 0} == {("0", "2", "4")}
    assert {tuple(sorted(r["test_at_steps"], key=int)) for r in records if r["seed"] > 0} == {("2", "4")}
    report = (tmp_path / "few-shot.md").read_text()
    assert "### K = 2 per class" in report and "### K = 4 per class" in report
    assert "sk-prefix-lowrank-lw - head-only: against a linear probe" in report
    assert "sk-prefix-lowrank-lw - zero-shot" in report
    assert (tmp_path / f"few-shot-{tiny_model_dir.rsplit('/', 1)[-1]}-train.png").stat().st_size > 10_000
