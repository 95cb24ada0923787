"""Serving many SK adapters on one backbone, measured on this machine in one run.

1. Throughput: one backbone forward over a batch whose rows belong to 1, 8 or 64 different adapters
   (`MultiAdapterModel`), against one adapter's own merged model alone at the same batch size.
2. The cost of one forward against its padded tokens, which the server's batching weighs.
   Then why the server runs every computation on its one worker thread: a forward on a thread while
   another thread's OpenMP pool exists, against alone.
3. Memory: the resident set of one process serving N adapters on one backbone, against N processes
   that each load the backbone for one adapter (N times the one-adapter process, measured).
4. A load test of `sktune serve` over loopback (httpx, asyncio): requests of one text for random
   adapters at several concurrencies, then a flood beyond the queue limit; throughput, p50/p95/p99
   latency, errors; and the server's time per text against in-process `predict` at the batch size
   the server formed.

    python benchmarks/serve.py                    # SmolLM2-135M, rt-polarity texts (docs/serving.md)
    python benchmarks/serve.py --tiny             # a tiny random Llama: the whole path in seconds (make test)

Adapters are SK-Prefix and SK-Prompt (lowrank) with random weights and task texts of different
lengths: speed and memory do not depend on what they learned. The load generator shares the
machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as tf
from common import quiet_cpu_setup

from sktuning import SKTuningConfig, get_sk_model, predict
from sktuning.data import load_task
from sktuning.inference.multi_adapter import MultiAdapterModel
from sktuning.sharing.zoo import load_backbone, model_path

TEXTS = ["Classify the sentiment of this movie review as positive or negative:", "Is this review positive?",
         "Decide whether the following sentence expresses a favourable or an unfavourable opinion of the film:",
         "Sentiment:", "Read the review and say if the critic liked the movie.",
         "Label the question by the type of answer it expects:"]


def make_adapters(backbone, tokenizer, count: int) -> list:
    """`count` adapters, alternating SK-Prefix and SK-Prompt, with texts of different lengths."""
    models = []
    for i in range(count):
        torch.manual_seed(i)
        config = SKTuningConfig(mode="prefix" if i % 2 == 0 else "prompt", adapter="lowrank", num_labels=2 + i % 3,
                                text=TEXTS[i % len(TEXTS)])
        model = get_sk_model(backbone, tokenizer, config)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.01)
        models.append(model.eval())
    return models


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def throughput(args, backbone, tokenizer, texts) -> None:
    models = make_adapters(backbone, tokenizer, max(args.adapters))
    multi = MultiAdapterModel(backbone)
    for i, model in enumerate(models):
        multi.add(str(i), model)
    batch = tokenizer(texts[:args.batch_size], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    variants = {"one adapter alone (its merged SKModel)": lambda: models[0](input_ids=ids, attention_mask=mask)}
    for n in args.adapters:
        names = [str(i % n) for i in range(len(ids))]
        variants[f"{n} adapter{'s' if n > 1 else ''} in one mixed batch"] = lambda names=names: multi(ids, mask, names)
    times = {name: [] for name in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    alone = statistics.median(times["one adapter alone (its merged SKModel)"])
    lengths = sorted({m.semantic.num_text_tokens for m in models})
    print(f"\n## Throughput: batch {len(ids)}, {ids.shape[1]} input tokens (padded), prefixes of {lengths[0]}-{lengths[-1]} "
          f"text tokens; median of {args.repeats}\n")
    print("| batch | ms per batch | texts/s | vs one adapter alone |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| {name} | {1000 * t:.1f} | {len(ids) / t:.1f} | {alone / t:.2f}x |")


def forward_cost(args, backbone, tokenizer, texts) -> None:
    """Time of one forward against its padded tokens (rows x width): the fixed part, in tokens, is what
    the server's batching weighs padding against (`sktune serve` measures it at start with two shapes)."""
    from sktuning.serving.batching import measure_forward_overhead

    model = make_adapters(backbone, tokenizer, 1)[0].merge()
    shapes = [(rows, width) for rows in (1, 4, 16) for width in (8, 24, 64)]
    seconds = []
    with torch.no_grad():
        for rows, width in shapes:
            ids = torch.randint(100, 1000, (rows, width))
            model(input_ids=ids, attention_mask=torch.ones_like(ids))  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(input_ids=ids, attention_mask=torch.ones_like(ids))
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times))
    tokens = torch.tensor([float(r * w) for r, w in shapes])
    fit = torch.linalg.lstsq(torch.stack([torch.ones_like(tokens), tokens], 1), torch.tensor(seconds)[:, None]).solution
    fixed, per_token = float(fit[0]), float(fit[1])
    args.cost = fixed, per_token  # the load test weighs the server's forwards with it
    print(f"\n## One forward: its time against its padded tokens (median of {args.repeats})\n")
    print("| rows x width | tokens | ms |")
    print("|---|---:|---:|")
    for (rows, width), t in zip(shapes, seconds):
        print(f"| {rows} x {width} | {rows * width} | {1000 * t:.1f} |")
    print(f"\nleast squares: {1000 * fixed:.1f} ms + {1000 * per_token:.2f} ms per token, so one more forward costs "
          f"what {fixed / per_token:.0f} padded tokens cost; `sktune serve`'s measure at start (two shapes): "
          f"{measure_forward_overhead(model.backbone)}")


def memory(args) -> None:
    """RSS of a fresh process holding the backbone and N adapters (one forward run)."""
    rows = {}
    for n in sorted({1, *args.adapters}):
        out = subprocess.run([sys.executable, __file__, "--model", args.model_dir, "--memory-probe", str(n),
                              "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        rows[n] = float(out.stdout.strip().splitlines()[-1])
    print("\n## Memory: resident set (RSS) after loading and one forward\n")
    print("| adapters | one process, one backbone (MiB) | N processes, one adapter each (MiB) | saved |")
    print("|---:|---:|---:|---:|")
    for n, mib in rows.items():
        print(f"| {n} | {mib:.0f} | {n * rows[1]:.0f} | {n * rows[1] / mib:.1f}x |")


def memory_probe(args) -> None:
    backbone, tokenizer = load_backbone(args.model)
    multi = MultiAdapterModel(backbone)
    for i, model in enumerate(make_adapters(backbone, tokenizer, args.memory_probe)):
        multi.add(str(i), model)
    batch = tokenizer(["a gorgeous, witty film"] * 2, return_tensors="pt")
    multi(batch["input_ids"], batch["attention_mask"], ["0", str(args.memory_probe - 1)])
    print(rss_mib())


def pools(args) -> None:
    """One forward timed on a worker thread, as the server runs it, in fresh processes: alone, after the
    main thread ran a forward (its OpenMP pool stays), after a thread that ran one exited (its pool goes)."""
    cases = {"alone": "only the worker thread ever ran a forward",
             "main": "the main thread ran a forward first (its OpenMP pool stays)",
             "exited": "a thread ran a forward first, then exited (as `sktune serve` starts up)"}
    print(f"\n## OpenMP pools: one forward (6 x 28 tokens) on a worker thread, median of {args.repeats}, a fresh "
          "process each\n")
    print("| before the worker's forwards | ms | vs alone |")
    print("|---|---:|---:|")
    times = {}
    for case, words in cases.items():
        out = subprocess.run([sys.executable, __file__, "--model", args.model_dir, "--pools-probe", case,
                              "--repeats", str(args.repeats), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        times[case] = float(out.stdout.strip().splitlines()[-1])
        print(f"| {words} | {times[case]:.1f} | {times[case] / times['alone']:.2f}x |")


def pools_probe(args) -> None:
    import threading

    backbone, _ = load_backbone(args.model)
    ids = torch.randint(100, 1000, (6, 28))

    def forwards(times: list, count: int) -> None:
        with torch.no_grad():
            for _ in range(count):
                start = time.perf_counter()
                backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
                times.append(time.perf_counter() - start)

    def on_a_thread(count: int) -> list:
        times: list = []
        thread = threading.Thread(target=forwards, args=(times, count))
        thread.start()
        thread.join()
        return times

    if args.pools_probe == "main":
        forwards([], 2)
    elif args.pools_probe == "exited":
        on_a_thread(2)
    print(1000 * statistics.median(on_a_thread(args.repeats + 1)[1:]))


# -- the load test --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, names: list[str], threads: int, *options: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    adapters = [a for name in names for a in ("--adapter", f"{name}={folder / name}")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    server = subprocess.Popen([sys.executable, "-m", "sktuning.cli", "serve", *adapters, "--port", str(port), *options],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise RuntimeError(f"sktune serve exited: {server.stderr.read()[-2000:]}")
    raise RuntimeError("sktune serve did not start within 300 s")


def plan(names: list[str], texts: list[str], requests: int, seed: int) -> list[tuple[str, str]]:
    """The requests of one load test: (adapter, text), adapters drawn at random, texts in order."""
    rng = random.Random(seed)
    return [(rng.choice(names), texts[i % len(texts)]) for i in range(requests)]


async def load(url: str, requests: list[tuple[str, str]], concurrency: int) -> dict:
    import httpx

    latencies, statuses = [], []
    todo = iter(requests)

    async def client(http):
        for name, text in todo:
            body = {"adapter": name, "texts": [text]}
            start = time.perf_counter()
            try:
                status = (await http.post(f"{url}/v1/predict", json=body)).status_code
            except httpx.HTTPError as err:
                status = type(err).__name__
            latencies.append(time.perf_counter() - start)
            statuses.append(status)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ok = sorted(t for t, s in zip(latencies, statuses) if s == 200)
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    counts = {str(s): statuses.count(s) for s in set(statuses)}
    return {"seconds": seconds, "ok": len(ok), "rate": len(ok) / seconds, "p50": q[49], "p95": q[94], "p99": q[98],
            "statuses": counts, "client_cpu": cpu / seconds}


def counters(url: str) -> dict[str, float]:
    """The server's totals from /metrics: rows and forwards, padded tokens, the worker's busy seconds."""
    import httpx

    names = ("sktune_batch_rows_sum", "sktune_batch_rows_count", "sktune_padded_tokens_total",
             "sktune_worker_busy_seconds_total")
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.split()[0] in names}


def since(url: str, before: dict[str, float]) -> dict[str, float]:
    """The server's counters since `before`, and the mean rows per forward over that time."""
    d = {key: value - before[key] for key, value in counters(url).items()}
    d["mean_batch"] = d["sktune_batch_rows_sum"] / max(1.0, d["sktune_batch_rows_count"])
    return d


def load_test(args, backbone, tokenizer, texts) -> None:
    names = [f"a{i}" for i in range(args.served)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = make_adapters(backbone, tokenizer, args.served)
        for name, model in zip(names, models):
            model.save_pretrained(folder / name, {"model": args.model_dir, "max_length": 64})
        server, url = start_server(folder, names, args.threads)
        print(f"\n## Load test: sktune serve with {args.served} adapters, {args.requests} requests of one text each, "
              f"random adapters, over loopback\n")
        print("| concurrency | texts/s | p50 (ms) | p95 (ms) | p99 (ms) | mean batch | worker busy | forwards: "
              "worker s / cost model s | load generator's CPU | statuses |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        try:
            for c in args.concurrency:
                before = counters(url)
                r = asyncio.run(load(url, plan(names, texts, args.requests, c), c))
                d = since(url, before)
                busy = d["sktune_worker_busy_seconds_total"]
                fixed, per_token = args.cost if args.cost else (float("nan"),) * 2
                model = d["sktune_batch_rows_count"] * fixed + d["sktune_padded_tokens_total"] * per_token
                print(f"| {c} | {r['rate']:.1f} | {1000 * r['p50']:.0f} | {1000 * r['p95']:.0f} | {1000 * r['p99']:.0f} "
                      f"| {d['mean_batch']:.1f} | {100 * busy / r['seconds']:.0f} % | {busy:.2f} / {model:.2f} "
                      f"| {100 * r['client_cpu']:.0f} % of a core | {json.dumps(r['statuses'])} |", flush=True)
            rounds = overhead_rounds(args, url, names, models, tokenizer, texts)
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
        c = args.concurrency[-1]
        print(f"\n## Overhead: the server at concurrency {c} against in-process `predict` on the same requests, in "
              f"alternating rounds of {args.round_requests} requests\n")
        print("| round | server texts/s | mean batch | in-process `predict` texts/s (batch) | server time per text |")
        print("|---:|---:|---:|---:|---:|")
        for i, (server_rate, batch, size, in_process) in enumerate(rounds, 1):
            print(f"| {i} | {server_rate:.1f} | {batch:.1f} | {in_process:.1f} ({size}) | {in_process / server_rate:.2f}x |")
        ratios = sorted(in_process / server_rate for server_rate, _, _, in_process in rounds)
        print(f"\nthe server's time per text: median {statistics.median(ratios):.2f}x in-process `predict` (rounds: "
              f"{ratios[0]:.2f}x to {ratios[-1]:.2f}x; target <= 1.2x); SIGTERM -> exit {code}")

        limit = args.flood_queue
        server, url = start_server(folder, names, args.threads, "--max-queue", str(limit))
        try:
            r = asyncio.run(load(url, plan(names, texts, args.flood_requests, 0), args.flood_concurrency))
            import httpx

            healthy = httpx.get(f"{url}/health", timeout=30).json()
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
        print(f"\nflood: {args.flood_requests} requests at concurrency {args.flood_concurrency} against --max-queue "
              f"{limit}: statuses {json.dumps(r['statuses'])}; /health afterwards {json.dumps(healthy)}; "
              f"SIGTERM -> exit {code}")


def overhead_rounds(args, url, names, models, tokenizer, texts) -> list[tuple[float, float, int, float]]:
    """The server against in-process `predict` on the same requests, in alternating rounds: this machine's
    speed drifts by +-15 % over minutes (a virtual machine), so each ratio pairs two runs made a minute apart.
    In-process, each adapter's own merged model predicts its share of the round's requests (sorted by length,
    as `predict` sorts) at the mean batch size the server formed in that round: what a user would run
    without a server. Gives (server texts/s, its mean batch, the batch size used, in-process texts/s)."""
    c = args.concurrency[-1]
    merged = {name: model.merge() for name, model in zip(names, models)}
    for name in names:  # warm-up
        predict(merged[name], tokenizer, texts[:4], batch_size=4, max_length=64)
    rounds = []
    for i in range(args.rounds):
        k = i * args.round_requests % len(texts)  # each round its own texts
        requests = plan(names, texts[k:] + texts[:k], args.round_requests, 100 + i)
        before = counters(url)
        server_rate = asyncio.run(load(url, requests, c))["rate"]
        batch = since(url, before)["mean_batch"]
        size = max(1, round(batch))
        start = time.perf_counter()
        for name in names:
            share = [text for owner, text in requests if owner == name]
            if share:
                predict(merged[name], tokenizer, share, batch_size=size, max_length=64)
        rounds.append((server_rate, batch, size, len(requests) / (time.perf_counter() - start)))
    return rounds


def tiny_model(folder: Path) -> str:
    """A tiny random Llama with SmolLM2's tokenizer, saved where `sktune serve` can load it."""
    _, tokenizer = load_backbone("smollm2-135m")
    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    tf.AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama and small counts (the test's run)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--adapters", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--served", type=int, default=8, help="adapters the load-tested server holds")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the server against predict")
    parser.add_argument("--round-requests", type=int, default=300)
    parser.add_argument("--flood-queue", type=int, default=8)
    parser.add_argument("--flood-concurrency", type=int, default=64)
    parser.add_argument("--flood-requests", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=["throughput", "cost", "pools", "memory", "load"],
                        default=["throughput", "cost", "pools", "memory", "load"], help="run these parts only")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pools-probe", choices=["alone", "main", "exited"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_cpu_setup(args.threads)
    args.cost = None
    if args.memory_probe:
        return memory_probe(args)
    if args.pools_probe:
        return pools_probe(args)
    with tempfile.TemporaryDirectory() as tmp:
        args.model_dir = tiny_model(Path(tmp)) if args.tiny else model_path(args.model)
        args.model = args.model_dir
        backbone, tokenizer = load_backbone(args.model_dir)
        texts = list(load_task("rt-polarity").splits["test"]["text"])
        print(f"# {'tiny random Llama' if args.tiny else args.model}; {platform.machine()}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; torch {torch.__version__}, "
              f"transformers {tf.__version__}; fp32; seed 0")
        for section in args.only:
            {"throughput": throughput, "cost": forward_cost, "pools": lambda *_: pools(args),
             "memory": lambda *_: memory(args), "load": load_test}[
                section](args, backbone, tokenizer, texts)


if __name__ == "__main__":
    main()
