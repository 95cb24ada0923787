"""Where sktuning keeps what it makes once: converted models, unpacked corpora."""

from __future__ import annotations

import os
from pathlib import Path


def sktuning_home() -> Path:
    """$SKTUNING_HOME, else ~/.cache/sktuning."""
    return Path(os.environ.get("SKTUNING_HOME", Path.home() / ".cache" / "sktuning"))
