"""The package version, in a module of its own so that anything may import it without a circle, and
the exact code a result came from (`code_version`), which every run records."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str | bool | None]:
    """{"version", "commit", "dirty"}: the git commit of the source tree this package runs from, and
    whether it had uncommitted changes; commit None for an installed wheel (no git tree)."""
    here = Path(__file__).resolve().parent
    out: dict[str, str | bool | None] = {"version": __version__, "commit": None, "dirty": None}
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        out["commit"] = git("rev-parse", "HEAD")
        out["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def cpu_model() -> str:
    """The processor's name (float results can differ from one CPU to another: its kernels sum in
    another order)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
