"""What the user can fix, told apart from bugs.

`UsageError`: bad input, a missing file, options that do not go together; its message names the problem
and the fix. `sktune` prints it on one line and exits 2. Every other exception is a bug (ours or a
library's) and shows its traceback (exit 1). `UsageError` is a `ValueError`, so Python callers that
catch ValueError keep working.
"""


class UsageError(ValueError):
    """Input the user can fix; the message says how."""


class MissingExtra(UsageError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


#: what a backbone raises when it cannot take the text a mode's way: a construction-time probe turns these
#: into a UsageError that quotes them (a crash there is the architecture's limit, not bad input of ours)
BACKBONE_REFUSALS = (ValueError, TypeError, AttributeError, NotImplementedError, RuntimeError, AssertionError)


def brief(err: BaseException, limit: int = 200) -> str:
    """An exception in one short line, for a refusal that quotes what the backbone said."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
