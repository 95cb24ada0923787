"""The benchmark scripts run (tiny settings), so they are ready when a machine is."""

import subprocess
import sys


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_overhead_benchmark_prints_ratios_for_every_method():
    out = run("benchmarks/overhead.py", "--models", "tiny", "--steps", "1", "--warmup", "0", "--batch-size", "4")
    for method in ("SK-Prompt (lowrank)", "SK-Prefix (lowrank)", "PEFT prompt tuning", "PEFT prefix tuning",
                   "SK-Prefix (authors)", "SK-Prefix (authors-linear)", "authors' code: text re-encoded per example"):
        assert f"| {method} |" in out


def test_gpu_benchmark_runs_its_code_path_on_cpu():
    out = run("benchmarks/gpu.py", "--tiny", "--steps", "1", "--warmup", "0", "--seq-len", "16", "--batch-size", "2")
    assert "| SK-Prefix (lowrank) |" in out and "| PEFT LoRA r=8 (q,k,v,o) |" in out


def test_numerics_benchmark_prints_every_loss(tiny_model_dir):
    out = run("benchmarks/numerics.py", "--model", tiny_model_dir, "--steps", "2", "--threads", "1")
    lines = out.splitlines()
    assert lines[0].startswith("# ") and "kernels" in lines[0] and "1 threads" in lines[0]
    assert [line.split()[:3] for line in lines[1:]] == [["step", "0", "loss"], ["step", "1", "loss"]]
