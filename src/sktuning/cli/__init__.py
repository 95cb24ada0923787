"""`sktune`: train, evaluate and use SK-Tuning adapters from the command line.

One module per command (`train`, `evaluate`, `predict`, `bench`, `listing`), the shared options in
`options`, what several commands load in `common`, and `main` for the parser and signals. Nothing
here imports torch until a command runs, so `sktune --help` and argument errors answer at once.
"""

from sktuning.cli.main import main

__all__ = ["main"]
