"""The two result tables of README.md, printed from the finished runs in docs/results.

1. The verdicts: the first table of docs/results/summary.md ("In one table"), with README's column
   names for the pairs, and the longer budget's (docs/results/long/summary.md) as more columns.
2. Test metric per method and pair, mean +- sd over the seeds at the rate each method's grid chose on
   validation (what each pair's report shows).

    python benchmarks/readme_tables.py                    # after `sktune bench` (or `--report-only`)
    python benchmarks/readme_tables.py --write README.md  # the same tables, put in place of README's

tests/test_readme_tables.py checks that README's tables are the ones this prints from the committed runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sktuning.core.atomic import atomic_write_text
from sktuning.bench import BenchSettings, Suite
from sktuning.bench.settings import METHODS

PAIRS = {"smollm2-135m-rt-polarity": ("smollm2-135m", "rt-polarity", "rt-polarity"),
         "smollm2-135m-trec": ("smollm2-135m", "trec", "trec"),
         "minilm-l6-rt-polarity": ("minilm-l6", "rt-polarity", "MiniLM rt-polarity"),
         "smollm2-135m-tweet-sentiment": ("smollm2-135m", "tweet-sentiment", "tweet-sentiment"),
         "smollm2-135m-brown-pos": ("smollm2-135m", "brown-pos", "brown-pos (token acc.)")}
COLUMNS = {"sk-prefix-lowrank": "SK-Prefix lowrank", "sk-prefix-authors": "SK-Prefix authors",
           "prefix-tuning-text": "PEFT prefix, text init", "sk-prompt-lowrank": "SK-Prompt lowrank",
           "prompt-tuning-text": "PEFT prompt, text init", "prefix-tuning": "PEFT prefix (random)",
           "lora": "LoRA r8", "full-ft": "full FT", "sk-prefix-frozen": "SK-Prefix frozen (ablation)",
           "sk-prefix-unrelated": "unrelated text (ablation)"}


def verdicts(results: Path) -> str:
    """summary.md's table, with the longer budget's pairs (results/long) as more columns where it has runs."""
    header, body = _one_table(results / "summary.md")
    labels = {name: label for name, (_, _, label) in PAIRS.items()}
    columns = [(label, {row[0]: row[header.index(name)] for row in body})
               for name, label in labels.items() if name in header]
    long = results / "long" / "summary.md"
    if long.exists():
        long_header, long_body = _one_table(long)
        for name, label in labels.items():
            if name in long_header:
                steps = json.loads((long.parent / f"{name}.runs.jsonl").open(encoding="utf-8").readline())
                done = _runs_done(long, name)
                columns.append((f"{label}, {steps['settings']['steps']} steps" + (f" ({done})" if done else ""),
                                {row[0]: row[long_header.index(name)] for row in long_body}))
    out = ["| question | " + " | ".join(label for label, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    return "\n".join(out + [f"| {row[0]} | " + " | ".join(cells.get(row[0], "—") for _, cells in columns) + " |"
                            for row in body])


def _runs_done(summary: Path, name: str) -> str | None:
    """"5 of 18 runs" while the pair's suite in that summary is unfinished, else None."""
    rows = [line for line in summary.read_text(encoding="utf-8").splitlines() if line.startswith(f"| [{name}](")]
    row = rows[-1]  # the claims table, the last to list the pairs, has the runs done
    done, _, planned = row.split("|")[2].strip().partition(" of ")
    return None if done == planned else f"{done} of {planned} runs"


def _one_table(summary: Path) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a summary's "In one table"."""
    lines = summary.read_text(encoding="utf-8").splitlines()
    start = lines.index("## In one table")
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[first:end]]
    return rows[0], rows[2:]


def means(results: Path) -> str:
    rows = ["| pair | " + " | ".join(COLUMNS.values()) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for model, task, label in PAIRS.values():
        suite = Suite(BenchSettings(model=model, task=task), METHODS, [0, 1, 2], grid=True, output=results)
        _, table, _ = suite.table()
        cells = []
        for method in COLUMNS:
            row = table.get(method)
            if row is None:
                cells.append("-")
            elif row["std"] is None:
                cells.append(f"{row['mean']:.3f} (1 seed)")
            else:
                seeds = "" if row["seeds"] == 3 else f" ({row['seeds']} seeds)"
                cells.append(f"{row['mean']:.3f} ± {row['std']:.3f}{seeds}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def put_in_place(document: str, tables: list[str]) -> str:
    """`document` with each of its tables that starts with the same header cell as one of `tables` (the
    text up to the first " | ") replaced by it; a table the document lacks is an error, not an append."""
    lines = document.splitlines()
    for table in tables:
        first_cell = table.split(" | ")[0] + " | "
        starts = [i for i, line in enumerate(lines) if line.startswith(first_cell)]
        if len(starts) != 1:
            raise ValueError(f"expected one table starting {first_cell!r}, found {len(starts)}")
        end = next((i for i in range(starts[0], len(lines)) if not lines[i].startswith("|")), len(lines))
        lines[starts[0]:end] = table.splitlines()
    return "\n".join(lines) + ("\n" if document.endswith("\n") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("docs/results"))
    parser.add_argument("--write", type=Path, metavar="README", help="replace this file's two tables in place")
    args = parser.parse_args()
    tables = [verdicts(args.results), means(args.results)]
    if args.write:
        atomic_write_text(args.write, put_in_place(args.write.read_text(encoding="utf-8"), tables))
    else:
        print(*tables, sep="\n\n")


if __name__ == "__main__":
    main()
