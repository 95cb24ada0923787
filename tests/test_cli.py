"""`sktune` end to end on a tiny local model and small files: outputs, exit codes, error messages."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import tiny_tokenizer

from sktuning.cli import main
from sktuning.core.adapter_format import read_adapter_meta


def train_args(model, data, out, *extra):
    return ["train", "--model", model, "--train", str(data / "train.csv"), "--validation",
            str(data / "validation.csv"), "--test", str(data / "test.csv"), "--steps", "12", "--batch-size", "8",
            "--eval-every", "6", "--save-every", "6", "--lr", "1e-2", "--output", str(out), "--quiet", *extra]


def test_train_eval_predict_round_trip(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] and metrics["split"] == "test" and set(metrics["metrics"]) == {"accuracy", "macro_f1"}
    assert metrics["trainable_parameters"] > 0 and metrics["train_seconds"] > 0
    assert [h["step"] for h in metrics["history"]] == [6, 12]
    assert sorted(p.name for p in (out / "adapter").iterdir()) == ["model.safetensors", "sk_config.json"]
    capsys.readouterr()

    assert main(["eval", "--adapter", str(out / "adapter"), "--test", str(data_dir / "test.csv"), "--quiet"]) == 0
    evaluated = json.loads((out / "eval-test-test.json").read_text())
    assert evaluated["metrics"] == pytest.approx(metrics["metrics"])

    capsys.readouterr()
    assert main(["predict", "--adapter", str(out / "adapter"), "w7 w12 w13", "w20 w21", "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["text"] for line in lines] == ["w7 w12 w13", "w20 w21"]
    for line in lines:
        assert line["label"] in ("no", "yes")
        assert sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert line["label"] == max(line["probabilities"], key=line["probabilities"].get)


def test_token_task_from_conll_predicts_tags(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "tags"
    args = ["train", "--model", tiny_model_dir, "--train", str(data_dir / "tags.conll"), "--steps", "4",
            "--batch-size", "4", "--output", str(out), "--quiet"]
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["metrics"].keys() == {"token_accuracy"}
    capsys.readouterr()
    assert main(["predict", "--adapter", str(out / "adapter"), "w11 w12 w13", "--quiet"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["tokens"] == ["w11", "w12", "w13"] and set(line["tags"]) <= {"N", "V"} and len(line["tags"]) == 3


def test_output_folder_of_another_run_is_refused_unless_overwrite(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    assert main(train_args(tiny_model_dir, data_dir, out)) == 2
    assert "already holds files of another run; pass --overwrite" in capsys.readouterr().err
    assert main(train_args(tiny_model_dir, data_dir, out, "--overwrite")) == 0


def test_resume_finishes_an_interrupted_run(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    (out / "metrics.json").unlink()
    assert main(["train", "--output", str(out), "--resume", "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 12


def test_resume_warns_about_flags_it_ignores(tiny_model_dir, data_dir, tmp_path, caplog):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    assert main(["train", "--output", str(out), "--resume", "--steps", "999"]) == 0
    assert "ignoring --steps" in caplog.text
    assert json.loads((out / "metrics.json").read_text())["steps"] == 12


@pytest.mark.parametrize("args,message", [
    (["train", "--task", "no-such-task"], "Unknown task 'no-such-task'"),
    (["train", "--model", "no-such-model", "--task", "trec"], "Unknown model 'no-such-model'"),
    (["train", "--train", "{data}/train.csv", "--label-column", "sentiment"], "sentiment"),
    (["train", "--train", "{data}/train.csv", "--label-names", "yes", "maybe"], "no"),
    (["train", "--train", "{data}/missing.csv"], "missing.csv"),
    (["train", "--resume", "--output", "{tmp}/nothing"], "no run to resume"),
    (["eval", "--adapter", "{tmp}/nothing"], "does not exist"),
    (["predict", "--adapter", "{tmp}/nothing"], "Nothing to predict"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, message, data_dir, tmp_path, capsys):
    args = [a.format(data=data_dir, tmp=tmp_path) for a in args]
    out = tmp_path / "out"
    if args[0] == "train" and "--output" not in args:
        args += ["--output", str(out)]
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_bug_is_not_bad_input_it_shows_its_traceback(monkeypatch, capsys):
    """Only a UsageError is the user's to fix (exit 2, one line); a ValueError from deeper down (torch,
    transformers, our own bug) propagates with its traceback, which Python turns into exit 1."""
    import sktuning.cli.listing as listing
    from sktuning.core.errors import UsageError

    def raising(error):
        def handler(args):
            raise error
        return handler
    monkeypatch.setattr(listing, "run_tasks", raising(ValueError("shapes (3, 4) and (5, 6) do not match")))
    with pytest.raises(ValueError, match="shapes"):
        main(["tasks"])
    monkeypatch.setattr(listing, "run_tasks", raising(UsageError("give --x")))
    assert main(["tasks"]) == 2
    assert capsys.readouterr().err.strip() == "sktune tasks: error: give --x"


def test_train_few_shot_reads_k_per_class_and_refuses_more_than_a_class_has(tiny_model_dir, data_dir, tmp_path,
                                                                              capsys):
    out = tmp_path / "shots"
    assert main(train_args(tiny_model_dir, data_dir, out, "--shots", "4", "--batch-size", "4", "--seed", "3")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["train_examples"], metrics["validation_examples"]) == (8, 8)  # 4 per class, 2 classes
    assert json.loads((out / "run.json").read_text())["shots"] == 4
    none = tmp_path / "no-validation"
    assert main(train_args(tiny_model_dir, data_dir, none, "--shots", "4", "--batch-size", "4",
                           "--no-shots-validation")) == 0
    metrics = json.loads((none / "metrics.json").read_text())
    assert metrics["validation_examples"] == 0 and metrics["best_step"] is None
    assert all(h["validation"] == {} for h in metrics["history"])
    assert main(train_args(tiny_model_dir, data_dir, tmp_path / "too-many", "--shots", "500")) == 2
    assert "lower --shots" in capsys.readouterr().err
    assert not (tmp_path / "too-many").exists()


def test_adapter_onto_a_different_backbone_is_refused(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    other = tmp_path / "other"
    import transformers as tf

    config = tf.LlamaConfig(vocab_size=101, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2)
    tf.AutoModel.from_config(config).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    assert main(["eval", "--adapter", str(out / "adapter"), "--model", str(other),
                 "--test", str(data_dir / "test.csv"), "--quiet"]) == 2
    assert "hidden_size=32" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--adapter", "nodir"], "give NAME=DIR"),
    (["--adapter", "a=x", "--adapter", "a=y"], "given twice"),
    (["--adapter", "a=x", "--forward-overhead-tokens", "-1"], "--forward-overhead-tokens must be >= 0"),
])
def test_serve_refuses_bad_options_before_loading_anything(args, message, capsys):
    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err


def test_tasks_and_models_are_listed(capsys):
    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    for name in ("rt-polarity", "trec", "trec-fine", "tweet-sentiment", "brown-pos", "sst2", "conll2003"):
        assert name in listing
    assert "9,752/1,000/2,000" in listing
    assert main(["models"]) == 0
    assert "smollm2-135m" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["predict"], ["export"], ["push"], ["serve"], ["bench"],
                                     ["tasks"], ["models"]])
@pytest.mark.subprocess
def test_every_command_has_help(command):
    result = subprocess.run([sys.executable, "-m", "sktuning.cli", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: sktune" in result.stdout


def test_bf16_and_gradient_checkpointing_flags_train(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out, "--bf16", "--gradient-checkpointing")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 12 and [h["step"] for h in metrics["history"]] == [6, 12]
    assert metrics["metrics"]["accuracy"] * 32 == round(metrics["metrics"]["accuracy"] * 32)  # of 32 test rows


def test_eval_on_a_file_with_fewer_labels_keeps_the_adapters_label_ids(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    only_yes = tmp_path / "yes.csv"
    lines = (data_dir / "test.csv").read_text().splitlines()
    only_yes.write_text("\n".join([lines[0]] + [l for l in lines[1:] if l.endswith(",yes")]) + "\n")
    assert main(["eval", "--adapter", str(out / "adapter"), "--test", str(only_yes), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", "--adapter", str(out / "adapter"), "--input", str(only_yes), "--quiet"]) == 0
    predictions = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    evaluated = json.loads((out / "eval-yes-test.json").read_text())
    share_yes = sum(p == "yes" for p in predictions) / len(predictions)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(share_yes)  # "yes" kept the adapter's id


def test_overwrite_with_bad_input_keeps_the_previous_run(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    bad = train_args(tiny_model_dir, data_dir, out, "--overwrite", "--label-column", "nope")
    assert main(bad) == 2
    assert (out / "metrics.json").is_file() and (out / "adapter").is_dir()


def test_empty_text_to_predict_is_refused(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_dir, out)) == 0
    assert main(["predict", "--adapter", str(out / "adapter"), "w7 w8", "  ", "--quiet"]) == 2
    assert "empty text" in capsys.readouterr().err


# A command that is killed (SIGTERM) while it writes a file and waits on a subprocess, as `sktune bench` does.
KILLED_MID_WRITE = textwrap.dedent("""
    import subprocess, sys
    import sktuning.cli.listing as listing
    from sktuning.core.atomic import atomic_path
    from sktuning.cli import main

    def slow(args):
        with atomic_path(sys.argv[1]) as tmp:
            tmp.write_text("half a report")
            child = "import os, pathlib, time; pathlib.Path(%r).write_text(str(os.getpid())); time.sleep(120)"
            subprocess.run([sys.executable, "-c", child % sys.argv[2]])

    listing.run_tasks = slow  # the parser, built by main, binds the command to it
    sys.exit(main(["tasks"]))
""")


@pytest.mark.subprocess
def test_sigterm_unwinds_like_ctrl_c_leaving_no_temporary_file_or_orphan(tmp_path):
    target, pid_file, err = tmp_path / "out" / "report.md", tmp_path / "child.pid", tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        command = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target), str(pid_file)],
                                   stderr=stderr)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    try:
        assert len(list(target.parent.iterdir())) == 1  # the temporary file, mid-write
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == 128 + signal.SIGTERM
        assert "sktune tasks: terminated." in err.read_text()
        assert list(target.parent.iterdir()) == []  # no half-written temporary left behind
        with pytest.raises(ProcessLookupError):  # the subprocess went with it
            os.kill(child, 0)
    finally:
        command.kill()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("option", ["--patience", "--max-train-examples", "--max-eval-examples"])
def test_limits_below_one_are_refused_before_anything_runs(option, tiny_model_dir, data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(train_args(tiny_model_dir, data_dir, tmp_path / "run", option, "0"))
    assert exit_.value.code == 2
    assert f"argument {option}: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(row) for row in rows]) + "\n", encoding="utf-8")
    return str(path)


def test_eval_and_predict_read_files_with_the_adapters_columns_and_pairs(tiny_model_dir, tmp_path, capsys):
    """Trained on a pair task with its own column names: eval and predict use them without being told."""
    rows = [(f"w{10 + i % 40} w{20 + i % 30}", "w7" if i % 2 else f"w{50 + i % 40}", "same" if i % 2 else "other")
            for i in range(64)]
    header = ["premise", "hypothesis", "verdict"]
    train = write_csv(tmp_path / "train.csv", header, rows[:48])
    one_row = write_csv(tmp_path / "one.csv", header, rows[48:49])
    test = write_csv(tmp_path / "test.csv", header, rows[48:])
    out = tmp_path / "run"
    assert main(["train", "--model", tiny_model_dir, "--train", train, "--text-column", "premise",
                 "--text-pair-column", "hypothesis", "--label-column", "verdict", "--steps", "4", "--batch-size",
                 "8", "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()

    for file, examples in ((test, 16), (one_row, 1)):  # the file is evaluated whole, nothing carved off it
        assert main(["eval", "--adapter", str(out / "adapter"), "--test", file, "--output-file",
                     str(tmp_path / "eval.json"), "--quiet"]) == 0
        assert json.loads((tmp_path / "eval.json").read_text())["examples"] == examples
    assert main(["eval", "--adapter", str(out / "adapter"), "--validation", test, "--split", "validation",
                 "--output-file", str(tmp_path / "eval.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["examples"] == 16

    capsys.readouterr()
    assert main(["predict", "--adapter", str(out / "adapter"), "--input", one_row, "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["text"], record["text_pair"]) == rows[48][:2] and record["label"] in ("other", "same")

    lone = write_csv(tmp_path / "lone.csv", ["premise"], [("w10 w11",)])
    for source, message in ((["--input", lone], "lone.csv has no column 'hypothesis' (columns: premise)"),
                            (["w10 w11"], "was trained on text pairs (columns 'premise' and 'hypothesis')")):
        assert main(["predict", "--adapter", str(out / "adapter"), *source, "--quiet"]) == 2
        assert message in capsys.readouterr().err


def test_a_backbone_given_as_a_relative_folder_is_found_from_anywhere(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    folder = Path(tiny_model_dir)
    monkeypatch.chdir(folder.parent)
    out = tmp_path / "run"
    assert main(train_args(folder.name, data_dir, out)) == 0
    assert read_adapter_meta(out / "adapter")["training"]["model"] == str(folder.resolve())
    monkeypatch.chdir(tmp_path)  # where no folder of that name is
    assert main(["eval", "--adapter", str(out / "adapter"), "--test", str(data_dir / "test.csv"), "--quiet"]) == 0
