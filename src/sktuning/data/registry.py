"""The registry of named tasks (`sktune tasks`): the bundled ones, which work offline, and the hub ones."""

from __future__ import annotations

from sktuning.core.errors import UsageError

from typing import Any

from sktuning.data.bundled import (BROWN_SIZES, RT_SIZES, TREC_SIZES, TWEET_SIZES, load_brown_pos, load_rt_polarity,
                                   load_trec, load_trec_fine, load_tweet_sentiment)
from sktuning.data.hub import hub_tasks
from sktuning.data.schema import SEQUENCE, TOKEN, TaskData, TaskSpec

NAMED_TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    TaskSpec("rt-polarity", SEQUENCE, "Rotten Tomatoes review snippets: rotten / fresh", "bundled", RT_SIZES,
             load_rt_polarity),
    TaskSpec("trec", SEQUENCE, "TREC question type, 6 coarse classes", "bundled", TREC_SIZES, load_trec),
    TaskSpec("trec-fine", SEQUENCE, "TREC question type, 50 fine classes", "bundled", TREC_SIZES, load_trec_fine),
    TaskSpec("tweet-sentiment", SEQUENCE, "Tweet sentiment: negative / neutral / positive", "bundled", TWEET_SIZES,
             load_tweet_sentiment),
    TaskSpec("brown-pos", TOKEN, "Brown corpus sentences, 12 universal part-of-speech tags", "bundled", BROWN_SIZES,
             load_brown_pos),
    *hub_tasks(),
]}


def load_task(name: str, **options: Any) -> TaskData:
    """A named task (see NAMED_TASKS); `options` go to its loader, e.g. `data_files=` for a hub task."""
    if name not in NAMED_TASKS:
        raise UsageError(f"Unknown task {name!r}: choose one of {', '.join(NAMED_TASKS)}, or give your own files.")
    return NAMED_TASKS[name].load(**options)


def load_data(name: str | None, train: str | None = None, validation: str | None = None, test: str | None = None,
              task_type: str | None = None, **file_options: Any) -> TaskData:
    """The one rule for where a run's data comes from (train, bench, eval): the named task `name`, or a
    task from files (`file_options`: columns and label names); rt-polarity when neither is given."""
    from sktuning.data.user_files import load_files

    if name and train:
        raise UsageError("Give either --task or --train/--validation/--test files, not both.")
    if train or test:
        return load_files(train or test, validation, test, task=task_type, **file_options)
    return load_task(name or "rt-polarity")
