"""`python -m sktuning.bench SPEC`: one run, as 0.1.0's Suite subprocesses started it (now
`python -m sktuning.bench.runner SPEC`)."""

import runpy

runpy.run_module("sktuning.bench.runner", run_name="__main__")
