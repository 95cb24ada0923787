"""Data-parallel training under the real launcher (torchrun, gloo on CPU)."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.subprocess  # every test here launches sktune or a script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(tiny_model_dir, data_dir, out, processes: int, steps: int = 24) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
                f"--master-port={free_port()}", "--module"] if processes > 1 else [sys.executable, "-m"]
    return launcher + ["sktuning.cli", "train", "--model", tiny_model_dir, "--train", str(data_dir / "train.csv"),
                       "--validation", str(data_dir / "validation.csv"), "--test", str(data_dir / "test.csv"),
                       "--steps", str(steps), "--batch-size", "8", "--eval-every", "8", "--save-every", "8",
                       "--lr", "1e-2", "--output", str(out), "--quiet"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SKTUNING_DIST_TIMEOUT": "60"}


def launch(command: list[str], out: Path) -> None:
    """Run a training command to the end; any failure fails the test. (A rank that tore gloo down while
    its peer's connections were live could abort at exit, "terminate called without an active
    exception": the CLI now meets at a barrier and destroys the process group before leaving,
    `sktuning.cli.main._leave_process_group`, so such an abort is a failure here, not retried.)"""
    done = subprocess.run(command, timeout=300, env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (out / "metrics.json").is_file()


def test_two_gloo_processes_match_one_process(tiny_model_dir, data_dir, tmp_path):
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        launch(train_command(tiny_model_dir, data_dir, out, processes), out)
    one = load_file(str(tmp_path / "p1" / "adapter" / "model.safetensors"))
    two = load_file(str(tmp_path / "p2" / "adapter" / "model.safetensors"))
    assert one.keys() == two.keys()
    assert max((one[k].float() - two[k].float()).abs().max().item() for k in one) <= 1e-5
    m1 = json.loads((tmp_path / "p1" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "p2" / "metrics.json").read_text())
    assert m2["processes"] == 2 and m1["processes"] == 1
    assert m1["metrics"] == m2["metrics"]  # the test split (32 rows) gathered once each across 2 ranks
    assert [h["validation"] for h in m1["history"]] == [h["validation"] for h in m2["history"]]
    assert sorted(p.name for p in (tmp_path / "p2").iterdir()) == ["adapter", "best", "checkpoints", "curves.png",
                                                                   "metrics.json", "run.json"]


def test_sharded_run_killed_then_resumed_gives_the_uninterrupted_adapter(tiny_model_dir, data_dir, tmp_path):
    """FSDP that keeps weights gathered after the forward (SHARD_GRAD_OP, as an accelerate config asks
    through the environment), evaluation and checkpoints every 5 steps: rank 0 alone saving must not
    throw the ranks' collectives out of step, and a kill -9 of the whole group then --resume (which
    re-shards from run.json) must land on the uninterrupted run's adapter."""
    sharded = {**env(), "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_RESHARD_AFTER_FORWARD": "false"}

    def command(out):
        command = train_command(tiny_model_dir, data_dir, out, 2, steps=60)
        command[command.index("--eval-every") + 1] = command[command.index("--save-every") + 1] = "5"
        return command

    subprocess.run(command(tmp_path / "full"), check=True, timeout=300, env=sharded)
    cut = tmp_path / "cut"
    group = subprocess.Popen(command(cut), env=sharded, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer, deadline = cut / "checkpoints" / "latest", time.monotonic() + 240
    while time.monotonic() < deadline and group.poll() is None:
        if pointer.is_file() and int(pointer.read_text().split("-")[1]) >= 20:
            break
        time.sleep(0.01)
    assert group.poll() is None, "the run finished before it could be killed"
    os.killpg(group.pid, signal.SIGKILL)  # the launcher and both ranks
    group.wait(timeout=30)
    assert not (cut / "metrics.json").exists()
    resume = [*command(cut)[:command(cut).index("train") + 1], "--output", str(cut), "--resume", "--quiet"]
    subprocess.run(resume, check=True, timeout=300, env=env())  # the plan comes back from run.json
    want, got = (load_file(str(out / "adapter" / "model.safetensors")) for out in (tmp_path / "full", cut))
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
    full, resumed = (json.loads((out / "metrics.json").read_text()) for out in (tmp_path / "full", cut))
    assert resumed["metrics"] == full["metrics"] and resumed["sharding"] == "fsdp"
    assert len(full["history"]) == 12 and len({h["validation"]["accuracy"] for h in full["history"]}) > 1


def test_token_task_shards_of_unequal_size_match_one_process(tiny_model_dir, data_dir, tmp_path):
    """Shards hold different numbers of tagged tokens: each adds its sum over the global count, so the
    2-process loss is the 1-process loss (a per-shard mean would weigh them by shard size)."""
    sentences = ["\n".join(f"w{10 + (i * 7 + j) % 80} {'N' if (i + j) % 3 else 'V'}" for j in range(1 + i % 9))
                 for i in range(48)]  # 1 to 9 tagged words per sentence
    conll = tmp_path / "uneven.conll"
    conll.write_text("\n\n".join(sentences) + "\n")
    for processes in (1, 2):
        command = train_command(tiny_model_dir, data_dir, tmp_path / f"p{processes}", processes, steps=8)
        for flag in ("--train", "--validation", "--test"):
            command[command.index(flag) + 1] = str(conll)
        subprocess.run(command, check=True, timeout=300, env=env())
    one, two = (load_file(str(tmp_path / f"p{p}" / "adapter" / "model.safetensors")) for p in (1, 2))
    assert max((one[k].float() - two[k].float()).abs().max().item() for k in one) <= 1e-5


def _pid_of_rank(rank: int, marker: str) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"sktuning.cli" in cmdline and f"\0RANK={rank}\0".encode() in b"\0" + environ:
            return int(proc.name)
    return None


def test_killing_one_rank_fails_the_run_quickly(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "killed"
    launcher = subprocess.Popen(train_command(tiny_model_dir, data_dir, out, 2, steps=100000), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and victim is None:
        if (out / "checkpoints" / "latest").exists():  # training is under way on both ranks
            victim = _pid_of_rank(1, str(out))
        time.sleep(0.1)
    assert victim is not None, "rank 1 never started training"
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    _, stderr = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    assert time.monotonic() - started < 120  # bounded: no hang on the dead peer
    assert "sktuning.cli" in stderr and ("Signal 9" in stderr or "SIGKILL" in stderr or "failed" in stderr.lower())


@pytest.fixture(scope="module")
def sharding_runs(tiny_model_dir, data_dir, tmp_path_factory):
    """Runs of the sharding test, by (mode, adapter, processes, engine), each launched once: both engines
    compare against the same one-process runs (an engine means nothing to one process)."""
    root = tmp_path_factory.mktemp("sharding")
    rows = [line for name in ("train", "validation", "test")
            for line in (data_dir / f"{name}.csv").read_text().splitlines()[1:]]
    (root / "odd.csv").write_text("text,label\n" + "\n".join(rows[:129]) + "\n")  # 65 + 64 rows: one idle batch
    zero = root / "ds.json"  # the tiny model's tensors are all small: ZeRO-3 keeps small ones whole unless told
    zero.write_text(json.dumps({"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}))
    done: dict[tuple, Path] = {}

    def run(mode: str, adapter: str, processes: int, engine: str) -> Path:
        key = (mode, adapter, processes, engine if processes > 1 else None)
        if key not in done:
            out = root / "-".join(str(k) for k in key)
            command = train_command(tiny_model_dir, data_dir, out, processes, steps=8)
            command[command.index("--test") + 1] = str(root / "odd.csv")
            if processes == 2:
                command += ["--shard", engine] + (["--gradient-checkpointing"] if mode == "prefix" else [])
                command += ["--deepspeed-config", str(zero)] if engine == "zero3" else []
            launch(command + ["--mode", mode, "--adapter", adapter], out)
            done[key] = out
        return done[key]
    return run


@pytest.mark.parametrize("engine", ["fsdp", "zero3"])
def test_sharded_backbone_matches_one_process(engine, sharding_runs):
    """The backbone split over 2 gloo ranks (prefix also under gradient checkpointing): the same adapter
    and metrics as 1 process, for both modes and, under FSDP, the authors' SK-Prefix (which runs the sharded
    backbone twice per step, text then batch), with evaluation shards that need an idle batch on one rank."""
    if engine == "zero3":
        pytest.importorskip("deepspeed")
    for mode, adapter in (("prompt", "lowrank"), ("prefix", "lowrank"), ("prefix", "authors"))[:3 if engine == "fsdp" else 2]:
        outs = {processes: sharding_runs(mode, adapter, processes, engine) for processes in (1, 2)}
        one, two = (load_file(str(outs[p] / "adapter" / "model.safetensors")) for p in (1, 2))
        assert one.keys() == two.keys()
        assert max((one[k].float() - two[k].float()).abs().max().item() for k in one) <= 1e-5
        m1, m2 = (json.loads((outs[p] / "metrics.json").read_text()) for p in (1, 2))
        assert m1["metrics"] == m2["metrics"]
        assert [h["validation"] for h in m1["history"]] == [h["validation"] for h in m2["history"]]
        assert m2["sharding"] == engine and m1["sharding"] is None
        backbone = m1["total_parameters"] - m1["trainable_parameters"]
        assert m2["backbone_parameters_per_process"] <= backbone / 2 + 64  # each rank holds half (+ padding)


def test_accelerate_launch_runs_sktune_train_plain_and_with_the_7b_recipes(tiny_model_dir, data_dir, tmp_path):
    """The other launcher: `accelerate launch` (torchrun underneath), plain and with the shipped FSDP and
    DeepSpeed ZeRO-3 config files, each on 2 gloo ranks against 1 process."""
    recipes = Path(__file__).parents[1] / "examples" / "accelerate"
    runs = {"one": ([], {}),
            "ddp": (["--multi_gpu", "--num_processes", "2"], {"ACCELERATE_USE_CPU": "1"}),
            "fsdp": (["--config_file", str(recipes / "fsdp-7b.yaml")], {}),
            "zero3": (["--config_file", str(recipes / "deepspeed-zero3-7b.yaml")], {})}
    if importlib.util.find_spec("deepspeed") is None:  # `make test` installs it; a bare checkout may not
        del runs["zero3"]
    for name, (launch, extra) in runs.items():
        command = train_command(tiny_model_dir, data_dir, tmp_path / name, 1, steps=8)
        if launch:  # the recipes' 8 GPUs and bf16 become 2 CPU processes in fp32
            launch += [] if name == "ddp" else ["--num_processes", "2", "--mixed_precision", "no"]
            command = [sys.executable, "-m", "accelerate.commands.launch", *launch,
                       f"--main_process_port={free_port()}", "-m", *command[2:]]
        subprocess.run(command, check=True, timeout=300, env={**env(), **extra})
    adapters = {name: load_file(str(tmp_path / name / "adapter" / "model.safetensors")) for name in runs}
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in runs}
    for name in set(runs) - {"one"}:
        assert max((adapters["one"][k] - adapters[name][k]).abs().max().item() for k in adapters["one"]) <= 1e-5
        assert metrics[name]["processes"] == 2 and metrics[name]["metrics"] == metrics["one"]["metrics"]
        assert metrics[name]["sharding"] == (None if name == "ddp" else name)


def _average_on_two_ranks(rank: int, init: str, out: str) -> None:
    import torch
    import torch.distributed as td

    from sktuning.scale.distributed import average_gradients

    td.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    shared, one_sided, unused = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    shared.grad = torch.full((3,), float(rank + 1))  # 1 and 2: mean 1.5
    if rank == 0:
        one_sided.grad = torch.tensor([4.0, 4.0, 4.0])  # rank 1's batch did not use it
    average_gradients([shared, one_sided, unused])
    torch.save({"shared": shared.grad, "one_sided": one_sided.grad, "unused": unused.grad}, f"{out}.{rank}")
    td.destroy_process_group()


def test_gradients_used_on_some_ranks_only_are_averaged_with_zeros_there(tmp_path):
    import torch
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'store'}"
    mp.spawn(_average_on_two_ranks, args=(init, str(tmp_path / "grads")), nprocs=2)
    for rank in (0, 1):
        grads = torch.load(tmp_path / f"grads.{rank}")
        assert grads["shared"].tolist() == [1.5] * 3 and grads["one_sided"].tolist() == [2.0] * 3
        assert grads["unused"] is None  # as AdamW would skip it in one process
