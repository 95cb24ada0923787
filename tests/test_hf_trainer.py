"""SKModel under transformers.Trainer (SKTrainer): trains, evaluates, predicts, keeps the best model,
resumes, and saves the adapter only."""

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")
from transformers import DataCollatorWithPadding, TrainingArguments  # noqa: E402

from sktuning import SKModel, SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.training.hf_trainer import SKTrainer  # noqa: E402
from sktuning.zoo import load_backbone  # noqa: E402


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


def trainer_for(model, tokenizer, data, output, steps=12, **extra):
    args = TrainingArguments(output_dir=str(output), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=1e-2, eval_strategy="steps", eval_steps=6, save_steps=6,
                             logging_steps=6, metric_for_best_model="accuracy", report_to=[], use_cpu=True,
                             seed=0, data_seed=0, **{"load_best_model_at_end": True, **extra})
    return SKTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                     data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)


def test_trainer_trains_saves_the_adapter_only_and_it_loads_back(tiny_model_dir, data_dir, tmp_path):
    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    assert model.start_token == tokenizer.bos_token_id
    trainer = trainer_for(model, tokenizer, data, tmp_path / "hf")
    trainer.train()
    checkpoint = tmp_path / "hf" / "checkpoint-6"
    names = {p.name for p in checkpoint.iterdir()}
    assert {"sk_config.json", "adapter_model.safetensors", "optimizer.pt", "trainer_state.json"} <= names
    assert "model.safetensors" not in names  # never the frozen backbone
    assert trainer.state.best_model_checkpoint is not None
    scores = trainer.evaluate(data["test"])
    assert 0 <= scores["eval_accuracy"] <= 1
    trainer.save_model(str(tmp_path / "final"))
    loaded = SKModel.from_pretrained(load_backbone(tiny_model_dir)[0], tmp_path / "final")
    batch = DataCollatorWithPadding(tokenizer)([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]}
                                                for r in data["test"].select(range(4))])
    torch.testing.assert_close(loaded(**batch).logits, model.eval()(**batch).logits)
    predicted = trainer.predict(data["test"])
    assert predicted.predictions.shape == (len(data["test"]), 2)


def test_trainer_resumes_from_its_checkpoint_to_the_uninterrupted_adapter(tiny_model_dir, data_dir, tmp_path):
    model, tokenizer, data = setup(tiny_model_dir, data_dir)
    trainer_for(model, tokenizer, data, tmp_path / "whole", load_best_model_at_end=False).train()
    want = model.trainable_state_dict()
    from transformers import TrainerCallback

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
    trainer = trainer_for(model, tokenizer, data, tmp_path / "cut", load_best_model_at_end=False)
    trainer.train(resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-6"))
    got = model.trainable_state_dict()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6)


def test_inputs_tokenized_with_a_second_start_token_are_refused(tiny_model_dir, data_dir):
    model, tokenizer, _ = setup(tiny_model_dir, data_dir)
    doubled = tokenizer(["w7 w8"], return_tensors="pt")  # the tokenizer's own <s> again
    with pytest.raises(ValueError, match="begin with the sequence-start token .* add_special_tokens=False"):
        model(**doubled)


def test_trl_sft_trainer_trains_a_causal_lm_adapter_and_saves_it_alone(tmp_path):
    trl = pytest.importorskip("trl")
    from conftest import tiny_backbone, tiny_tokenizer

    from sktuning.training.hf_trainer import sk_trainer

    tokenizer = tiny_tokenizer()
    causal_lm = tiny_backbone("llama", wrapper="causal-lm")
    torch.manual_seed(0)
    model = get_sk_model(causal_lm, tokenizer, SKTuningConfig(text="w5 w6", task="causal-lm", adapter="linear"))
    data = datasets.Dataset.from_list([{"text": "w40 w41 w42 w43"} for _ in range(32)])  # one sentence to learn
    args = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=20, per_device_train_batch_size=8,
                         learning_rate=3e-2, report_to=[], use_cpu=True, logging_steps=1, save_steps=20,
                         loss_type="nll", gradient_checkpointing=False, bf16=False)  # TRL defaults to bf16
    trainer = sk_trainer(trl.SFTTrainer)(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.1  # it learns (a prefix alone moves a random tiny LM slowly)
    names = {p.name for p in (tmp_path / "sft" / "checkpoint-20").iterdir()}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
    trainer.save_model(str(tmp_path / "final"))
    loaded = SKModel.from_pretrained(tiny_backbone("llama", wrapper="causal-lm"), tmp_path / "final")
    ids = tokenizer(["w40 w41"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


def test_the_trainer_example_runs(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "examples/hf_trainer.py", "--model", tiny_model_dir, "--steps", "2",
                             "--max-train", "32", "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test_accuracy" in result.stdout
    assert SKModel.from_pretrained(load_backbone(tiny_model_dir)[0], tmp_path / "out" / "adapter") is not None
