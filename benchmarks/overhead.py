"""Training-step time of SK-Prompt / SK-Prefix against PEFT prompt and prefix tuning, and the authors'
parametrisation of SK-Prefix (trainable text embeddings re-read by the frozen model at every step) in
two implementations: sktuning's (`adapter="authors"`: once per step at batch size 1, broadcast) and
the authors' code's (the text repeated once per example, every step).

All methods see the same batch, the same number of virtual tokens (the text's length) and train a
linear classification head; steps are timed round-robin so that machine noise hits all alike.

    python benchmarks/overhead.py                 # tiny model, then SmolLM2-135M
    python benchmarks/overhead.py --models tiny   # seconds
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import peft
import torch
import transformers as tf
from torch import nn

from common import PeftWithHead, quiet_cpu_setup

from sktuning import SKModel, SKTuningConfig
from sktuning.core.heads import pool
from sktuning.core.model import tokenize_text
from sktuning.sharing.zoo import load_backbone

TEXT = "Classify the sentiment of this movie review as positive or negative. Review:"


class RepeatedTextPrefix(nn.Module):
    """The authors' code: every step re-runs the frozen model on trainable text embeddings, repeated
    once per example, to get the prefix keys/values."""

    def __init__(self, backbone, text_ids, num_labels):
        super().__init__()
        self.backbone = backbone.requires_grad_(False)
        self.text_embeds = nn.Parameter(backbone.get_input_embeddings()(text_ids).detach().clone())
        self.head = nn.Linear(backbone.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, labels):
        batch, m = input_ids.shape[0], self.text_embeds.shape[0]
        cache = tf.DynamicCache(config=self.backbone.config)
        self.backbone(inputs_embeds=self.text_embeds.repeat(batch, 1, 1), cache=cache, use_cache=True)
        mask = torch.cat([attention_mask.new_ones(batch, m), attention_mask], 1)
        hidden = self.backbone(input_ids=input_ids, attention_mask=mask, cache=cache).last_hidden_state
        logits = self.head(pool(hidden, attention_mask, "last"))
        return nn.functional.cross_entropy(logits, labels)


def sk_step_fn(backbone, text_ids, mode, adapter):
    model = SKModel(backbone, SKTuningConfig(mode=mode, text=TEXT, adapter=adapter), text_ids).train()
    return model, lambda b: model(**b).loss


def peft_step_fn(backbone, config):
    model = PeftWithHead(backbone, config).train()
    return model, lambda b: model(**b)


def build_methods(name: str, seq_len: int, batch_size: int):
    if name == "tiny":
        torch.manual_seed(0)
        config = tf.LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                                num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, num_labels=2)
        make_backbone = lambda: tf.LlamaModel(config)  # noqa: E731
        text_ids = torch.randint(3, 1000, (15,))
        vocab = 1000
    else:
        backbone, tokenizer = load_backbone(name)
        text_ids = torch.tensor(tokenize_text(tokenizer, TEXT))
        make_backbone = lambda: load_backbone(name)[0]  # noqa: E731
        vocab = backbone.config.vocab_size
    m = len(text_ids)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch_size,), generator=gen)
    ids = torch.randint(3, vocab, (batch_size, seq_len), generator=gen)
    mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, 0 if name == "tiny" else 2)  # pad id on the right
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (batch_size,), generator=gen)}
    features = peft.TaskType.FEATURE_EXTRACTION
    methods = {
        "SK-Prompt (lowrank)": lambda: sk_step_fn(make_backbone(), text_ids, "prompt", "lowrank"),
        "SK-Prefix (lowrank)": lambda: sk_step_fn(make_backbone(), text_ids, "prefix", "lowrank"),
        "SK-Prefix (embedding)": lambda: sk_step_fn(make_backbone(), text_ids, "prefix", "embedding"),
        "SK-Prefix (authors)": lambda: sk_step_fn(make_backbone(), text_ids, "prefix", "authors"),
        "SK-Prefix (authors-linear)": lambda: sk_step_fn(make_backbone(), text_ids, "prefix", "authors-linear"),
        "PEFT prompt tuning": lambda: peft_step_fn(make_backbone(), peft.PromptTuningConfig(
            task_type=features, num_virtual_tokens=m)),
        "PEFT prefix tuning": lambda: peft_step_fn(make_backbone(), peft.PrefixTuningConfig(
            task_type=features, num_virtual_tokens=m)),
        "authors' code: text re-encoded per example": lambda: _repeated(make_backbone(), text_ids),
    }
    return methods, batch, m


def _repeated(backbone, text_ids):
    model = RepeatedTextPrefix(backbone, text_ids, 2).train()
    return model, lambda b: model(**b)


def time_methods(methods, batch, steps: int, warmup: int):
    built = {}
    for label, make in methods.items():
        model, loss_fn = make()
        params = [p for p in model.parameters() if p.requires_grad]
        built[label] = (model, loss_fn, torch.optim.AdamW(params, lr=1e-4), sum(p.numel() for p in params))
    times = {label: [] for label in built}
    for step in range(warmup + steps):
        for label, (model, loss_fn, opt, _) in built.items():  # round-robin
            start = time.perf_counter()
            loss_fn(batch).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step >= warmup:
                times[label].append(time.perf_counter() - start)
    return {label: (statistics.median(times[label]), built[label][3]) for label in built}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    quiet_cpu_setup(args.threads)
    print(f"# machine: {platform.machine()}, {torch.get_num_threads()} threads; python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {tf.__version__}, peft {peft.__version__}; seed 0")
    print(f"# batch {args.batch_size} x up to {args.seq_len} tokens, median of {args.steps} steps after "
          f"{args.warmup} warm-up, fp32, CPU")
    for name in args.models:
        methods, batch, m = build_methods(name, args.seq_len, args.batch_size)
        results = time_methods(methods, batch, args.steps, args.warmup)
        peft_prompt = results["PEFT prompt tuning"][0]
        peft_prefix = results["PEFT prefix tuning"][0]
        repeated = results["authors' code: text re-encoded per example"][0]
        default = results["SK-Prefix (lowrank)"][0]
        print(f"\n## {name} ({m} text tokens = virtual tokens)\n")
        print("| method | trainable params | step (s) | vs PEFT prompt | vs PEFT prefix | vs SK-Prefix (lowrank) "
              "| vs authors' code |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, (seconds, params) in results.items():
            print(f"| {label} | {params:,d} | {seconds:.3f} | {seconds / peft_prompt:.2f} | "
                  f"{seconds / peft_prefix:.2f} | {seconds / default:.2f} | {seconds / repeated:.2f} |")


if __name__ == "__main__":
    main()
