"""What a benchmark run is given: the methods and their learning-rate grids, the budget
(`BenchSettings`), the quick budget, the full suite."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class BenchSettings:
    model: str = "smollm2-135m"
    task: str = "rt-polarity"
    steps: int = 120
    batch_size: int = 8
    eval_every: int = 30
    max_train: int | None = 4000        # None: the whole split (few-shot runs draw K per class instead)
    max_eval: int | None = 300
    max_test: int | None = 600         # None: the whole test split
    max_length: int = 64
    warmup_ratio: float = 0.06
    # length-grouped training batches (`TrainingArguments.group_by_length`); unset (None) in the committed
    # suites, whose runs trained on the plain stream order, so that new seeds stay comparable with them
    group_by_length: bool | None = None
    # torch's CPU threads per run; unset: torch's own choice, one per core of the machine
    threads: int | None = None
    # few-shot (`sktune bench --shots K`): K training and K validation examples per class, drawn per seed
    # (every method of a seed reads the same sample); max_train and max_eval then do not apply
    shots: int | None = None
    # the steps at which the test split is scored during training (pre-registered, never chosen on test);
    # step 0 (the untrained model) is scored for the first seed only. Unset: once, after training, with
    # the adapter that scored best on validation
    test_steps: list[int] | None = None
    # the steps of `test_steps` between 0 and the last are scored for seeds below this only (None: every
    # seed): the curve against step is descriptive, the comparisons are at the last step
    curve_seeds: int | None = None
    # the user's own files instead of the named task (`task` then only names the report); what
    # `sktune train` takes: --train/--validation/--test, the columns, the label names, the task type
    train: str | None = None
    validation: str | None = None
    test: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    label_names: list[str] | None = None
    task_type: str | None = None

    def same_as(self, recorded: dict) -> bool:
        """Whether a run recorded with `recorded` settings ran this budget (fields added since then are
        unset in it: None on both sides counts as the same)."""
        from dataclasses import asdict

        mine = {k: v for k, v in asdict(self).items() if v is not None}
        return mine == {k: v for k, v in recorded.items() if v is not None}


#: the BenchSettings fields that name the user's own data (the options of `sktune train`)
OWN_DATA = ("train", "validation", "test", "text_column", "text_pair_column", "label_column", "label_names",
            "task_type")

QUICK = dict(steps=24, batch_size=8, eval_every=8, max_train=1000, max_eval=128, max_test=256, max_length=48)
#: the suite of the benchmark issue: four tasks on SmolLM2, one on MiniLM (cheapest first within a phase)
FULL_SUITE = [("smollm2-135m", "rt-polarity"), ("smollm2-135m", "trec"), ("minilm-l6", "rt-polarity"),
              ("smollm2-135m", "tweet-sentiment"), ("smollm2-135m", "brown-pos")]


def format_duration(seconds: float) -> str:
    """'3 h 05 min', '12 min': how long the rest of a suite will take, at the precision it can be known."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


SK_METHODS = [f"sk-{mode}-{adapter}" for mode in ("prefix", "prompt") for adapter in ("lowrank", "embedding",
                                                                                      "linear", "scale")]
SK_METHODS.insert(4, "sk-prefix-authors")  # the authors' own parametrisation (sktuning.core.authors_prefix)
#: SK-Prefix taken apart, to see where its score comes from; reported beside the methods, never picked as
#: "the best SK": the adapter frozen at the identity (the frozen model's reading of the text, and the head),
#: and the default adapter trained on an unrelated text of the same token length (`UNRELATED_TEXT`)
ABLATIONS = ["sk-prefix-frozen", "sk-prefix-unrelated"]
METHODS = SK_METHODS + ["prompt-tuning", "prompt-tuning-text", "prefix-tuning", "prefix-tuning-text",
                        "prefix-tuning-mlp", "p-tuning", "lora", "head-only", "full-ft"] + ABLATIONS
#: PEFT methods asked for that cannot run under the benchmark's protocol (a frozen backbone read by a
#: pooled linear head), and why
NOT_APPLICABLE = {
    "cpt": "PEFT's CPT (context-aware prompt tuning) trains a causal LM on in-context examples with its own "
           "loss: CPTConfig refuses every task type but CAUSAL_LM ('CPTConfig only supports task_type = "
           "CAUSAL_LM'), so it cannot feed the benchmark's pooled classification head. It applies to "
           "task='causal-lm' runs, which the suite does not have.",
}
#: the few-shot suite's methods (docs/few-shot-plan.md). "-lw": with the label-word head, whose class scores
#: start as the backbone's next-token logits of each label's words after the answer template. Text
#: controls: the default SK-Prefix with a fluent unrelated text, and with random vocabulary ids, of the
#: task text's token length. "full-ft-lw": every backbone weight trains, reading the task text, the input
#: and the template, scored by the label-word head (LM-BFF's prompt-based fine-tuning)
FEW_SHOT_METHODS = ["sk-prefix-lowrank-lw", "sk-prompt-lowrank-lw", "sk-prefix-lowrank", "sk-prompt-lowrank",
                    "sk-prefix-unrelated-lw", "sk-prefix-random-ids-lw", "head-only", "prompt-tuning-text",
                    "prefix-tuning-text", "lora", "full-ft", "full-ft-lw"]
#: the few-shot suite (`sktune bench --shots 16 64`, docs/few-shot-plan.md): its pairs, seeds, and budget
FEW_SHOT_PAIRS = [("smollm2-135m", "rt-polarity"), ("smollm2-135m", "trec"), ("smollm2-135m", "tweet-sentiment"),
                  ("minilm-l6", "rt-polarity")]
FEW_SHOT_SEEDS = list(range(10))


def few_shot_settings(model: str, task: str, shots: int, steps: int | None = None) -> BenchSettings:
    """The pre-registered few-shot budget (docs/few-shot-plan.md): batch 8 in length-grouped batches, 64
    steps up to K=16 and 128 above, validation on the K-shot set four times; 1,000 test texts (the same
    for every run) scored at step 0 (first seed), half-way (first three seeds) and the last step."""
    steps = steps or (64 if shots <= 16 else 128)
    return BenchSettings(model=model, task=task, steps=steps, batch_size=8, eval_every=steps // 4,
                         max_train=None, max_eval=None, max_test=1000, max_length=64, shots=shots,
                         test_steps=[0, steps // 2, steps], curve_seeds=3, group_by_length=True)


#: what `sktune bench --quick` runs: every method but the ablations
QUICK_METHODS = [m for m in METHODS if m not in ABLATIONS]
#: learning-rate grids, chosen on validation; full fine-tuning and LoRA move the backbone and want less
LR_GRID: dict[str, list[float]] = {name: [1e-3, 3e-3, 1e-2] for name in METHODS}
LR_GRID.update({"lora": [3e-4, 1e-3, 3e-3], "full-ft": [1e-5, 3e-5, 1e-4]})
LR_GRID.update({"sk-prefix-lowrank-lw": [1e-3, 3e-3, 1e-2], "sk-prompt-lowrank-lw": [1e-3, 3e-3, 1e-2],
                "full-ft-lw": [1e-5, 3e-5, 1e-4]})
DEFAULT_LR: dict[str, float] = {name: grid[1] for name, grid in LR_GRID.items()}
#: prefix tuning with the MLP chose the lowest rate on every SmolLM2 task; Li & Liang (2021) train it
#: near 5e-5: its grid reaches down from the start
LR_GRID["prefix-tuning-mlp"] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
#: a rate chosen at an end of a finished grid adds the next rate beyond it, at most this often per end
#: (three: full fine-tuning on brown-pos climbed 1e-4 -> 3e-4 -> 1e-3 and still chose the top)
MAX_EXTENSIONS = 3


def next_rate(rate: float, up: bool) -> float:
    """The next rate of the 1-3-10 ladder: 3e-3 -> 1e-2 (up) or 1e-3 (down); 1e-3 -> 3e-3 or 3e-4."""
    exponent = math.floor(math.log10(rate) + 1e-9)
    leading = round(rate / 10 ** exponent)
    if up:
        return float(f"{3 if leading == 1 else 1}e{exponent if leading == 1 else exponent + 1}")
    return float(f"{1 if leading == 3 else 3}e{exponent if leading == 3 else exponent - 1}")
#: a method with no grid of its own: it runs at the rate chosen for another (the ablation changes the text only)
RATE_OF = {"sk-prefix-unrelated": "sk-prefix-lowrank", "sk-prefix-unrelated-lw": "sk-prefix-lowrank-lw",
           "sk-prefix-random-ids-lw": "sk-prefix-lowrank-lw"}
#: every method a run can name
ALL_METHODS = METHODS + [m for m in FEW_SHOT_METHODS if m not in METHODS]

#: the unrelated text: about a train journey, no task's words, cut to the task text's token length
#: (repeated if it is shorter)
UNRELATED_TEXT = ("The train to the coast leaves the old station at nine in the morning, and the trip takes "
                  "about three hours through wheat fields, small towns with stone bridges and a long tunnel under "
                  "the hills, before the line turns south and runs beside the sea to the harbour.")


def unrelated_text_ids(tokenizer, length: int) -> list[int]:
    """`length` token ids of `UNRELATED_TEXT` (no special tokens), the same count as the task's text."""
    ids = tokenizer(UNRELATED_TEXT, add_special_tokens=False)["input_ids"]
    return (ids * (length // len(ids) + 1))[:length]


def random_text_ids(tokenizer, text_ids: list[int], seed: int) -> list[int]:
    """The text's ids with every ordinary token replaced by a vocabulary id drawn with `seed` (special
    tokens such as [CLS] stay where they are): the text's length and structure, no words at all."""
    import random

    special = set(tokenizer.all_special_ids)
    pool = [i for i in range(len(tokenizer)) if i not in special]
    draw = random.Random(f"random-ids/{seed}")
    return [i if i in special else draw.choice(pool) for i in text_ids]
