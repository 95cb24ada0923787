"""`python -m sktuning.cli` (what torchrun and accelerate launch start)."""

import sys

from sktuning.cli.main import main

sys.exit(main())
