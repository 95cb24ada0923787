"""README's result tables are the ones `python benchmarks/readme_tables.py` prints from the committed runs."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readmes_tables_are_what_the_command_prints_now(readme_tables):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = ROOT / "docs" / "results"
    tables = [readme_tables.verdicts(results), readme_tables.means(results)]
    for table in tables:
        assert table in readme, "README's tables are stale: run `python benchmarks/readme_tables.py --write README.md`"
    assert readme_tables.put_in_place(readme, tables) == readme


def test_tables_are_replaced_whole_and_a_missing_one_is_an_error(readme_tables):
    document = "intro\n\n| pair | a |\n|---|---|\n| x | 1 |\n| y | 2 |\n\nafter\n"
    new = readme_tables.put_in_place(document, ["| pair | a | b |\n|---|---|---|\n| x | 3 | 4 |"])
    assert new == "intro\n\n| pair | a | b |\n|---|---|---|\n| x | 3 | 4 |\n\nafter\n"
    with pytest.raises(ValueError, match="expected one table starting '| question | ', found 0"):
        readme_tables.put_in_place(document, ["| question | b |\n|---|---|"])
