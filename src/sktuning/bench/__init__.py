"""`sktune bench`: SK-Tuning against the real baselines, same backbone, data, head, pooling,
optimiser, step budget and seeds; a markdown report and a learning-curve plot per task.

    settings   the methods, their learning-rate grids, the budget, the suite of pairs
    baselines  every method behind the training loop's interface (PEFT's for the baselines)
    runner     one run (a method, a rate, a seed) in its own subprocess, through sktuning's training loop
    suite      the runs of one model-task pair: resumable, in phases, a rate chosen on validation
    stats      summary rows and the verdict on each claim of the paper
    report     the markdown reports and plots

Learning rates come from a small per-method grid, chosen on the validation split with seed 0; the
test split is read only for the final numbers, at the best validation step.
"""

from sktuning.bench.report import write_summary
from sktuning.bench.runner import run_one
from sktuning.bench.settings import FULL_SUITE, METHODS, QUICK, BenchSettings, format_duration
from sktuning.bench.suite import PHASES, Suite

__all__ = ["FULL_SUITE", "METHODS", "PHASES", "QUICK", "BenchSettings", "Suite", "format_duration", "run_one",
           "write_summary"]
