"""Deprecated: the tasks moved to `sktuning.data` (schema, bundled, hub, user_files, registry).

`from sktuning.tasks import load_task` keeps working with a DeprecationWarning; import from
`sktuning.data` instead. `TASKS` is `sktuning.data.NAMED_TASKS`.
"""

from __future__ import annotations

import warnings

from sktuning.data.bundled import (BROWN_SIZES, RT_SIZES, TREC_SIZES, TWEET_SIZES, brown_dir, load_brown_pos,
                                   load_rt_polarity, load_trec, load_trec_fine, load_tweet_sentiment, read_brown)
from sktuning.data.registry import NAMED_TASKS, load_task
from sktuning.data.schema import REGRESSION, SEQUENCE, SPLITS, TOKEN, TaskData, TaskSpec
from sktuning.data.user_files import load_files, read_table

TASKS = NAMED_TASKS

__all__ = ["BROWN_SIZES", "REGRESSION", "RT_SIZES", "SEQUENCE", "SPLITS", "TASKS", "TOKEN", "TREC_SIZES",
           "TWEET_SIZES", "TaskData", "TaskSpec", "brown_dir", "load_brown_pos", "load_files", "load_rt_polarity",
           "load_task", "load_trec", "load_trec_fine", "load_tweet_sentiment", "read_brown", "read_table"]

warnings.warn("sktuning.tasks is deprecated: import from sktuning.data (load_task, load_files, NAMED_TASKS).",
              DeprecationWarning, stacklevel=2)
