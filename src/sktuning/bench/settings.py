"""What a benchmark run is given: the methods and their learning-rate grids, the budget
(`BenchSettings`), the quick budget, the full suite."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BenchSettings:
    model: str = "smollm2-135m"
    task: str = "rt-polarity"
    steps: int = 120
    batch_size: int = 8
    eval_every: int = 30
    max_train: int = 4000
    max_eval: int = 300
    max_test: int = 600
    max_length: int = 64
    warmup_ratio: float = 0.06


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
#: SK-Prefix taken apart, to see where its score comes from; reported beside the methods, never picked as
#: "the best SK": the adapter frozen at the identity (the frozen model's reading of the text, and the head),
#: and the default adapter trained on an unrelated text of the same token length (`UNRELATED_TEXT`)
ABLATIONS = ["sk-prefix-frozen", "sk-prefix-unrelated"]
METHODS = SK_METHODS + ["prompt-tuning", "prompt-tuning-text", "prefix-tuning", "prefix-tuning-text",
                        "prefix-tuning-mlp", "p-tuning", "lora", "head-only", "full-ft"] + ABLATIONS
#: learning-rate grids, chosen on validation; full fine-tuning and LoRA move the backbone and want less
LR_GRID: dict[str, list[float]] = {name: [1e-3, 3e-3, 1e-2] for name in METHODS}
LR_GRID.update({"lora": [3e-4, 1e-3, 3e-3], "full-ft": [1e-5, 3e-5, 1e-4]})
DEFAULT_LR: dict[str, float] = {name: grid[1] for name, grid in LR_GRID.items()}
#: a method with no grid of its own: it runs at the rate chosen for another (the ablation changes the text only)
RATE_OF = {"sk-prefix-unrelated": "sk-prefix-lowrank"}

#: the unrelated text: about a train journey, no task's words, cut to the task text's token length
#: (repeated if it is shorter)
UNRELATED_TEXT = ("The train to the coast leaves the old station at nine in the morning, and the trip takes "
                  "about three hours through wheat fields, small towns with stone bridges and a long tunnel under "
                  "the hills, before the line turns south and runs beside the sea to the harbour.")


def unrelated_text_ids(tokenizer, length: int) -> list[int]:
    """`length` token ids of `UNRELATED_TEXT` (no special tokens), the same count as the task's text."""
    ids = tokenizer(UNRELATED_TEXT, add_special_tokens=False)["input_ids"]
    return (ids * (length // len(ids) + 1))[:length]
