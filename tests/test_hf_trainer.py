"""SKModel under transformers' own, unmodified Trainer (and TRL's SFTTrainer): it trains, evaluates and
predicts; saved models, checkpoints, the best model and a resumed run go through the Trainer's own
code paths and hold the adapter and head only, in a folder SKModel.from_pretrained loads."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_ids, tiny_backbone, tiny_tokenizer
from safetensors.torch import load_file

datasets = pytest.importorskip("datasets")
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from sktuning import SKModel, SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.core.adapter_format import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from sktuning.core.errors import UsageError  # noqa: E402
from sktuning.sharing.zoo import load_backbone  # noqa: E402


@pytest.fixture
def trainer_log(monkeypatch, caplog):
    """What transformers logs at WARNING and above (its loggers do not propagate by default)."""
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="transformers")
    return caplog


def setup(tiny_model_dir, data_dir):
    backbone, tokenizer = load_backbone(tiny_model_dir)
    backbone.config.bos_token_id = tokenizer.bos_token_id  # as in real models: the tokenizer's start token
    torch.manual_seed(0)  # the adapter's initial values
    model = get_sk_model(backbone, tokenizer, SKTuningConfig(text="w3 w4", num_labels=2, label_names=["no", "yes"]))
    files = {split: str(data_dir / f"{split}.csv") for split in ("train", "validation", "test")}
    raw = datasets.load_dataset("csv", data_files=files)

    def encode(rows):  # the text took the start token: the inputs get none of their own
        out = tokenizer(rows["text"], add_special_tokens=model.start_token is None)
        out["labels"] = [["no", "yes"].index(label) for label in rows["label"]]
        return out

    return model, tokenizer, raw.map(encode, batched=True, remove_columns=["text", "label"])


def accuracy(prediction):
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def trainer_for(model, tokenizer, data, output, steps=12, compute_metrics=accuracy, **extra):
    args = TrainingArguments(output_dir=str(output), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=1e-2, eval_strategy="steps", eval_steps=6, save_steps=6,
                             logging_steps=6, metric_for_best_model="accuracy", report_to=[], use_cpu=True,
                             seed=0, data_seed=0, **{"load_best_model_at_end": True, **extra})
    return Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                   data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)


def adapter_on_disk(folder):
    return load_file(str(folder / WEIGHTS_NAME))


def assert_holds_the_adapter_only(folder, model):
    tensors = adapter_on_disk(folder)
    assert tensors.keys() == model.trainable_state_dict().keys()  # no backbone key, no LM head
    assert not any(k.startswith(("backbone.", "lm_head.")) for k in tensors)
    assert (folder / CONFIG_NAME).is_file() and not (folder / "adapter_model.safetensors").exists()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5 * 2 ** 20


def no_load_warnings(log):
    said = [r.getMessage() for r in log.records if "keys" in r.getMessage()]
    assert not said, said


def test_trainer_trains_saves_the_adapter_only_and_it_loads_back(tiny_model_dir, data_dir, tmp_path):
    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    assert model.start_token == tokenizer.bos_token_id
    trainer = trainer_for(model, tokenizer, data, tmp_path / "hf", load_best_model_at_end=False)
    trainer.train()
    checkpoint = tmp_path / "hf" / "checkpoint-6"
    assert {"optimizer.pt", "trainer_state.json"} <= {p.name for p in checkpoint.iterdir()}
    assert_holds_the_adapter_only(checkpoint, model)
    from_checkpoint = SKModel.from_pretrained(load_backbone(tiny_model_dir)[0], checkpoint)  # a checkpoint loads too
    on_disk, loaded = adapter_on_disk(checkpoint), from_checkpoint.trainable_state_dict()
    assert loaded.keys() == on_disk.keys() and all(torch.equal(loaded[k], on_disk[k]) for k in on_disk)
    scores = trainer.evaluate(data["test"])
    assert scores["eval_accuracy"] * len(data["test"]) == round(scores["eval_accuracy"] * len(data["test"]))
    trainer.save_model(str(tmp_path / "final"))
    assert_holds_the_adapter_only(tmp_path / "final", model)
    loaded = SKModel.from_pretrained(load_backbone(tiny_model_dir)[0], tmp_path / "final")
    batch = DataCollatorWithPadding(tokenizer)([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]}
                                                for r in data["test"].select(range(4))])
    assert torch.equal(loaded(**batch).logits, model.eval()(**batch).logits)
    predicted = trainer.predict(data["test"])
    assert predicted.predictions.shape == (len(data["test"]), 2)


def test_the_best_checkpoint_is_restored_at_the_end(tiny_model_dir, data_dir, tmp_path, trainer_log):
    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    scores = iter([0.5, 0.9, 0.1])  # the checkpoint of step 12 is the best; step 18 is the last

    def scripted(prediction):
        return {"accuracy": next(scores)}

    trainer = trainer_for(model, tokenizer, data, tmp_path / "hf", steps=18, compute_metrics=scripted)
    trainer.train()
    assert trainer.state.best_model_checkpoint == str(tmp_path / "hf" / "checkpoint-12")
    best, last = (adapter_on_disk(tmp_path / "hf" / f"checkpoint-{step}") for step in (12, 18))
    got = model.trainable_state_dict()
    assert all(torch.equal(got[name], best[name]) for name in best)
    assert not all(torch.equal(got[name], last[name]) for name in last)
    no_load_warnings(trainer_log)


def test_trainer_resumes_from_its_checkpoint_to_the_uninterrupted_adapter(tiny_model_dir, data_dir, tmp_path,
                                                                          trainer_log):
    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    trainer_for(model, tokenizer, data, tmp_path / "whole", load_best_model_at_end=False).train()
    want = model.trainable_state_dict()

    class StopAtSix(TrainerCallback):  # the same 12-step run, interrupted after its step-6 checkpoint
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                control.should_training_stop = True
            return control

    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    cut = trainer_for(model, tokenizer, data, tmp_path / "cut", load_best_model_at_end=False)
    cut.add_callback(StopAtSix())
    cut.train()
    model, tokenizer, data = setup(tiny_model_dir, data_dir)  # a fresh process would start here
    with torch.no_grad():  # from a state unlike the checkpoint's, so only loading it can pass the test
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    trainer = trainer_for(model, tokenizer, data, tmp_path / "cut", load_best_model_at_end=False)
    trainer.train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-6"))
    got = model.trainable_state_dict()
    assert all(torch.equal(got[name], want[name]) for name in want)  # bit for bit
    no_load_warnings(trainer_log)


def test_the_trainers_loader_restores_every_saved_tensor_the_templates_too(tmp_path, trainer_log):
    tokenizer = tiny_tokenizer()
    config = SKTuningConfig(text="w5 w6", num_labels=2, head="label-words", label_words=[["w7"], ["w8"]],
                            answer_template="w9 w10")
    torch.manual_seed(0)
    model = get_sk_model(tiny_backbone("llama", wrapper="causal-lm"), tokenizer, config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    model.save_pretrained(tmp_path / "adapter")
    assert "template_input_ids" in adapter_on_disk(tmp_path / "adapter")
    fresh = get_sk_model(tiny_backbone("llama", wrapper="causal-lm"), tokenizer, config)
    fresh.template_input_ids = fresh.template_input_ids.flip(0)  # the template too must come from the file
    trainer = Trainer(model=fresh, args=TrainingArguments(str(tmp_path / "out"), report_to=[], use_cpu=True))
    trainer._load_from_checkpoint(str(tmp_path / "adapter"))  # what resume_from_checkpoint runs
    want, got = model.trainable_state_dict(), fresh.trainable_state_dict()
    assert want.keys() == got.keys() and all(torch.equal(got[k], want[k]) for k in want)
    no_load_warnings(trainer_log)


@pytest.mark.parametrize("arch", ["llama", "bert"])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_wrapping_leaves_the_backbones_config_as_it_was(arch, attention):
    backbone = tiny_backbone(arch)
    backbone.set_attn_implementation(attention)
    before = backbone.config.to_dict()
    model = SKModel(backbone, SKTuningConfig(text="t", num_labels=2), random_ids(3))
    assert backbone.config._attn_implementation == attention
    assert backbone.config.to_dict() == before
    assert model.config is backbone.config and model.get_input_embeddings() is backbone.get_input_embeddings()


def test_save_pretrained_takes_the_trainers_gathered_tensors_and_writes_on_the_main_process_only(tmp_path):
    model = SKModel(tiny_backbone("llama"), SKTuningConfig(text="t", num_labels=2), random_ids(3))
    gathered = {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "other", state_dict=gathered, is_main_process=False)
    assert not (tmp_path / "other").exists()
    model.save_pretrained(tmp_path / "a", state_dict=gathered)  # as ZeRO-3 / FSDP hand it over
    saved = adapter_on_disk(tmp_path / "a")
    assert all(torch.equal(saved[k], gathered[k]) for k in model.trainable_state_dict())
    SKModel.from_pretrained(tiny_backbone("llama"), tmp_path / "a")  # the checksum fits the file


def test_inputs_tokenized_with_a_second_start_token_are_refused(tiny_model_dir, data_dir):
    model, tokenizer, _ = setup(tiny_model_dir, data_dir)
    doubled = tokenizer(["w7 w8"], return_tensors="pt")  # the tokenizer's own <s> again
    with pytest.raises(ValueError, match="begin with the sequence-start token .* add_special_tokens=False"):
        model(**doubled)


def test_trl_sft_trainer_trains_a_causal_lm_adapter_and_saves_it_alone(tmp_path):
    trl = pytest.importorskip("trl")
    tokenizer = tiny_tokenizer()
    causal_lm = tiny_backbone("llama", wrapper="causal-lm")
    torch.manual_seed(0)
    model = get_sk_model(causal_lm, tokenizer, SKTuningConfig(text="w5 w6", task="causal-lm", adapter="linear"))
    data = datasets.Dataset.from_list([{"text": "w40 w41 w42 w43"} for _ in range(32)])  # one sentence to learn
    settings = dict(output_dir=str(tmp_path / "sft"), max_steps=20, per_device_train_batch_size=8,
                    learning_rate=3e-2, report_to=[], use_cpu=True, logging_steps=1, save_steps=20,
                    gradient_checkpointing=False, bf16=False)  # TRL defaults to bf16
    with pytest.raises(UsageError, match="loss_type='nll'"):  # TRL's default loss would skip the adapter
        trl.SFTTrainer(model=model, args=trl.SFTConfig(**settings), train_dataset=data, processing_class=tokenizer)
    trainer = trl.SFTTrainer(model=model, args=trl.SFTConfig(**settings, loss_type="nll"), train_dataset=data,
                             processing_class=tokenizer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.1  # it learns (a prefix alone moves a random tiny LM slowly)
    assert_holds_the_adapter_only(tmp_path / "sft" / "checkpoint-20", model)
    trainer.save_model(str(tmp_path / "final"))
    assert_holds_the_adapter_only(tmp_path / "final", model)
    loaded = SKModel.from_pretrained(tiny_backbone("llama", wrapper="causal-lm"), tmp_path / "final")
    ids = tokenizer(["w40 w41"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert torch.equal(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


@pytest.mark.subprocess
def test_the_trainer_example_runs(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    example = Path(__file__).parents[1] / "examples" / "hf_trainer.py"
    result = subprocess.run([sys.executable, str(example), "--model", tiny_model_dir, "--steps", "2",
                             "--max-train", "32", "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test_accuracy" in result.stdout
    loaded = SKModel.from_pretrained(load_backbone(tiny_model_dir)[0], tmp_path / "out" / "adapter")
    assert loaded.trainable_state_dict().keys() == adapter_on_disk(tmp_path / "out" / "adapter").keys()
