"""The house's shape, kept: rooms that import only the rooms below them (the core nothing else of the
package), no import circle, no file over 400 lines, a light `import sktuning`, and the documented
imports working."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sktuning"
HEAVY = ("peft", "matplotlib", "pandas", "sklearn", "datasets", "deepspeed", "seqeval", "scipy")

#: each room of the package and the rooms it may import; a change belongs in the lowest room that can hold it
ROOMS = {
    "core": set(),                                   # the method: config, backbone, modes, heads, model, its files
    "scale": {"core"},                               # several processes, sharded and quantized backbones
    "data": {"core"},                                # tasks, files, splits, subsets, encoding
    "sharing": {"core", "scale"},                    # the Hub, PEFT/vLLM export, the offline model zoo
    "inference": {"core", "data", "scale"},          # prediction, many adapters on one backbone, zero-shot
    "training": {"core", "data", "scale", "inference", "sharing"},
    "serving": {"core", "data", "scale", "inference", "sharing"},
    "bench": {"core", "data", "scale", "inference", "sharing", "training"},
    "cli": set(),                                    # the top: may import every room (filled in below)
}
ROOMS["cli"] = set(ROOMS) - {"cli"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every sktuning module `name` imports, at the top or inside a function (TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    # a package's __init__ is its face, not a dependency (it re-exports lazily)
    return {m for m in out if m in known and m != name and known[m].name != "__init__.py"}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in edges[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_no_import_cycle_among_sktunings_modules():
    edges = graph()
    circles = sorted(name for name in edges if name in reachable(name, edges))
    assert not circles, f"modules on an import circle: {circles}"


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def room_of(module: str) -> str:
    return module.split(".")[1]


def test_every_module_lives_in_a_room():
    loose = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules outside the rooms {sorted(ROOMS)}: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ROOMS)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_a_room_imports_only_the_rooms_below_it(room):
    wrong = sorted(f"{name} -> {dep}" for name, deps in graph().items() if name.startswith(f"sktuning.{room}.")
                   for dep in deps if room_of(dep) not in ROOMS[room] | {room})
    assert not wrong, f"{room} may import only {sorted(ROOMS[room])}: {wrong}"


def loaded_after(code: str) -> set[str]:
    """The top-level packages in sys.modules after running `code` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in "
                          "sys.modules})))"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.subprocess
def test_import_sktuning_loads_nothing_heavy():
    assert not loaded_after("import sktuning") & set(HEAVY + ("torch", "transformers"))


@pytest.mark.subprocess
def test_the_core_api_loads_torch_and_transformers_but_no_extra():
    loaded = loaded_after("from sktuning import SKModel, SKTuningConfig, get_sk_model, predict")
    assert {"torch", "transformers", "safetensors"} <= loaded
    # transformers' PreTrainedModel itself imports scipy (its detection losses): not ours to avoid
    assert not loaded & (set(HEAVY) - {"scipy"})


@pytest.mark.subprocess
def test_help_and_argument_errors_load_no_torch():
    code = """
import contextlib, io
from sktuning.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for argv in (["--help"], ["train", "--steps", "-5"], ["train", "--batch-size", "0"]):
        try:
            main(argv)
        except SystemExit as exit:  # argparse: help, or a value its type refuses
            assert exit.code in (0, 2), argv
    assert main(["train", "--text", ""]) == 2
    assert main(["train", "--task", "trec", "--train", "a.csv"]) == 2
"""
    assert "torch" not in loaded_after(code)


def test_documented_imports_work_and_no_shim_module_is_left():
    from sktuning import Predictions, SKModel, SKModelOutput, SKTuningConfig, get_sk_model, predict  # noqa: F401
    from sktuning.core.heads import pool  # noqa: F401
    from sktuning.core.model import tokenize_text  # noqa: F401

    import importlib.util
    for gone in ("sktuning.models", "sktuning.tasks", "sktuning.trainer", "sktuning.bench.__main__"):
        assert importlib.util.find_spec(gone) is None, gone


def test_no_public_name_is_shadowed_by_a_submodule():
    """Importing `pkg.x` sets the attribute `pkg.x` to the module, so a lazy name `x` beside a
    submodule `x` turns into the module once anything imports it (`from sktuning import predict`
    returned the module `sktuning.predict` after the training loop had imported it)."""
    import importlib

    known = modules()
    for package in ("sktuning", "sktuning.data", "sktuning.training", "sktuning.bench", "sktuning.serving"):
        exports = importlib.import_module(package)._EXPORTS
        clashes = sorted(name for name in exports if f"{package}.{name}" in known)
        assert not clashes, f"{package} exports {clashes}, which are also its submodules"


@pytest.mark.subprocess
def test_public_names_survive_their_modules_being_imported_first():
    code = """
import sktuning.inference.prediction, sktuning.core.model, sktuning.training.loop  # the submodules first, as the CLI does
from sktuning import Predictions, SKModel, get_sk_model, predict
import types
assert not isinstance(predict, types.ModuleType) and callable(predict), predict
assert predict.__module__ == "sktuning.inference.prediction"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_names_kept_in_two_places_agree():
    import sktuning
    from sktuning.core.adapters import ADAPTERS
    from sktuning.core.config import ADAPTER_KINDS, AUTHORS_KINDS, REFINING_KINDS
    from sktuning.data.bundled import BUNDLED_TASKS
    from sktuning.data.registry import NAMED_TASKS
    from sktuning.core.version import __version__

    assert sktuning.__version__ == __version__
    assert tuple(ADAPTERS) == REFINING_KINDS and ADAPTER_KINDS == REFINING_KINDS + AUTHORS_KINDS
    assert BUNDLED_TASKS == tuple(name for name, spec in NAMED_TASKS.items() if spec.source == "bundled")


def test_a_missing_extra_is_named_with_the_command_that_installs_it():
    from sktuning.core.extras import require

    with pytest.raises(ImportError, match=r"comes with sktuning's 'bench' extra .*pip install 'sktuning\[bench\]'"):
        require("a_package_that_is_not_installed", "bench")
    assert require("json", "data").dumps([1]) == "[1]"


@pytest.mark.subprocess
def test_inference_works_without_the_data_extra(tmp_path):
    """predict() and SKModel need neither datasets nor pandas nor sklearn: blocked here, they are not missed."""
    code = f"""
import sys
for name in ("datasets", "pandas", "sklearn", "scipy.stats", "peft", "matplotlib"):
    sys.modules[name] = None  # any import of them now fails
sys.path.insert(0, {str(Path(__file__).parent)!r})
import torch
from conftest import tiny_backbone, tiny_tokenizer
from sktuning import SKTuningConfig, get_sk_model, predict
torch.manual_seed(0)
model = get_sk_model(tiny_backbone("llama"), tiny_tokenizer(), SKTuningConfig(text="w5 w6", num_labels=2)).eval()
records = predict(model.merge(), tiny_tokenizer(), ["w7 w8", "w9"]).records
assert [sorted(r) for r in records] == [["label", "probabilities", "text"]] * 2, records
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
