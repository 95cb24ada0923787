"""SK-Prefix trained by transformers' own, unmodified Trainer on a bundled task, then evaluated on its
test split and saved as an adapter that SKModel.from_pretrained loads: `trainer.save_model`, the
checkpoints and the best model hold the adapter and head only, since SKModel is a PreTrainedModel
whose save_pretrained writes nothing else.

    python examples/hf_trainer.py                                   # SmolLM2-135M, rt-polarity
    python examples/hf_trainer.py --model PATH --steps 4 --max-train 64 --output /tmp/out
"""

import argparse

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from sktuning import SKTuningConfig, get_sk_model
from sktuning.core.config import task_config
from sktuning.data.registry import load_task
from sktuning.sharing.zoo import load_backbone

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="smollm2-135m")
parser.add_argument("--task", default="rt-polarity")
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--max-train", type=int, default=None)
parser.add_argument("--output", default="runs/hf-trainer")
args = parser.parse_args()

torch.manual_seed(0)
data = load_task(args.task)
backbone, tokenizer = load_backbone(args.model)
model = get_sk_model(backbone, tokenizer, SKTuningConfig(**{**task_config(data, tokenizer).to_dict(), "mode": "prefix"}))
names = data.label_names


def encode(rows):  # inputs without the start token when the text took it (model.start_token)
    out = tokenizer(rows["text"], truncation=True, max_length=128, add_special_tokens=model.start_token is None)
    out["labels"] = [names.index(label) if isinstance(label, str) else label for label in rows["label"]]
    return out


splits = {name: data.splits[name] for name in ("train", "validation", "test")}
if args.max_train:
    splits = {name: split.shuffle(seed=0).select(range(min(args.max_train, len(split))))
              for name, split in splits.items()}
columns = splits["train"].column_names
encoded = {name: split.map(encode, batched=True, remove_columns=columns) for name, split in splits.items()}


def accuracy(prediction):
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


training = TrainingArguments(output_dir=args.output, max_steps=args.steps, per_device_train_batch_size=16,
                             learning_rate=3e-3, warmup_steps=int(0.06 * args.steps), eval_strategy="steps",
                             eval_steps=max(1, args.steps // 2), save_steps=max(1, args.steps // 2),
                             load_best_model_at_end=True, metric_for_best_model="accuracy", report_to=[],
                             use_cpu=True, seed=0)
trainer = Trainer(model=model, args=training, train_dataset=encoded["train"], eval_dataset=encoded["validation"],
                  data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
trainer.train()
print("test", trainer.evaluate(encoded["test"], metric_key_prefix="test"))
trainer.save_model(f"{args.output}/adapter")
print(f"adapter in {args.output}/adapter")
