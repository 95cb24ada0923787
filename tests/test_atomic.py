"""Atomic writes: a reader, or a crash, never sees half a file; JSON any reader accepts."""

import json
import os

import pytest

from sktuning.core.atomic import atomic_directory, atomic_write_text, strict_json


def test_atomic_directory_replaces_a_folder_holding_sub_folders(tmp_path):

    for value in ("old", "new"):
        with atomic_directory(tmp_path / "ckpt") as tmp:
            (tmp / "adapter").mkdir()
            (tmp / "adapter" / "w.txt").write_text(value)
            (tmp / "state.json").write_text(value)
    assert (tmp_path / "ckpt" / "adapter" / "w.txt").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_atomic_writes_keep_an_existing_files_mode_and_give_a_new_one_the_umasks(tmp_path):
    import stat


    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.md", "x")
        (tmp_path / "private.md").write_text("old")
        os.chmod(tmp_path / "private.md", 0o600)
        atomic_write_text(tmp_path / "private.md", "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "private.md").stat().st_mode) == 0o600
    assert (tmp_path / "private.md").read_text() == "new"


def test_strict_json_writes_non_finite_numbers_as_null():


    text = strict_json({"metrics": {"pearson": float("nan")}, "best": float("-inf"), "history": [(1, 0.5)]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == \
        {"metrics": {"pearson": None}, "best": None, "history": [[1, 0.5]]}
