"""The benchmark scripts run (tiny settings), so they are ready when a machine is."""

import math
import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess  # every test here launches sktune or a script


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_overhead_benchmark_prints_ratios_for_every_method():
    out = run("benchmarks/overhead.py", "--models", "tiny", "--steps", "1", "--warmup", "0", "--batch-size", "4")
    for method in ("SK-Prompt (lowrank)", "SK-Prefix (lowrank)", "PEFT prompt tuning", "PEFT prefix tuning",
                   "SK-Prefix (authors)", "SK-Prefix (authors-linear)", "authors' code: text re-encoded per example"):
        assert f"| {method} |" in out


def test_throughput_benchmark_prints_each_path_against_the_limit(tiny_model_dir):
    out = run("benchmarks/throughput.py", "--model", tiny_model_dir, "--steps", "2", "--score", "40",
              "--score-batch-sizes", "8", "16")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.splitlines() if line.startswith("| ")}
    assert {"training, batch 16, random batches", "training, batch 16, length-grouped",
            "scoring, batch 8, merged, length-sorted", "scoring, batch 16, merged, length-sorted",
            "scoring, batch 8, unmerged, length-sorted"} <= set(rows)
    padding = {name: float(cells[4].rstrip("x")) for name, cells in rows.items() if name.startswith("training")}
    assert padding["training, batch 16, length-grouped"] < padding["training, batch 16, random batches"]
    assert all(cells[5].rstrip(" |").endswith("%") for name, cells in rows.items() if name != "path")
    assert "limit:" in out and "GFLOP/s before" in out


def test_gpu_benchmark_runs_its_code_path_on_cpu():
    out = run("benchmarks/gpu.py", "--tiny", "--steps", "1", "--warmup", "0", "--seq-len", "16", "--batch-size", "2")
    assert "| SK-Prefix (lowrank) |" in out and "| PEFT LoRA r=8 (q,k,v,o) |" in out


def test_numerics_benchmark_prints_every_loss(tiny_model_dir):
    out = run("benchmarks/numerics.py", "--model", tiny_model_dir, "--steps", "2", "--threads", "1")
    lines = out.splitlines()
    assert lines[0].startswith("# ") and "kernels" in lines[0] and "1 threads" in lines[0]
    assert [line.split()[:3] for line in lines[1:]] == [["step", "0", "loss"], ["step", "1", "loss"]]


def test_serving_benchmark_load_test_answers_everything_below_the_queue_limit_and_503_above():
    """The serving benchmark end to end on a tiny model (the small, bounded load test of make test)."""
    import json

    out = run("benchmarks/serve.py", "--tiny", "--repeats", "1", "--adapters", "1", "2", "--served", "4",
              "--requests", "24", "--concurrency", "1", "8", "--flood-requests", "48", "--flood-concurrency", "24",
              "--flood-queue", "2", "--rounds", "2", "--round-requests", "10")
    assert "| 2 adapters in one mixed batch |" in out and "| 2 | " in out  # throughput and memory rows
    pools = [line for line in out.split("## OpenMP pools")[1].split("##")[0].splitlines() if line.endswith("x |")]
    assert len(pools) == 3 and pools[0].endswith("| 1.00x |")  # alone, beside the main's pool, after it exited
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 8 |")]
    load_rows = [r for r in rows if len(r) > 11]
    assert [json.loads(r[-2]) for r in load_rows] == [{"200": 24}, {"200": 24}]  # below the queue limit: no error
    for r in load_rows:  # the worker's busy share of the wall time, and its seconds against the cost model's
        assert 0 < float(r[7].strip(" %")) <= 100
        worker, model = (float(x) for x in r[8].split("/"))
        assert worker > 0 and math.isfinite(model)  # the cost section's fit weighs the forwards
    rounds = [line.split("|") for line in out.split("## Overhead")[1].splitlines() if line[:3] in ("| 1", "| 2")]
    assert len(rounds) == 2  # server and in-process predict alternate on the same requests
    for r in rounds:
        server, in_process = float(r[2]), float(r[4].split("(")[0])
        assert float(r[5].strip(" x")) == pytest.approx(in_process / server, abs=0.006)
    assert "median" in out.split("## Overhead")[1] and "target <= 1.2x" in out
    flood = json.loads(out.split("flood: ")[1].split("statuses ")[1].split("; /health")[0])
    assert set(flood) == {"200", "503"} and flood["503"] > 0 and sum(flood.values()) == 48
    assert '"status": "ok"' in out.split("/health afterwards")[1] and out.count("SIGTERM -> exit 0") == 2
