"""`sktune serve` under load: requests for different adapters that arrive together run as one mixed batch
and answer as each adapter alone; a full queue answers 503 with Retry-After and the server stays
healthy; /metrics speaks Prometheus; SIGTERM finishes what is in flight and exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sktuning import SKModel, SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.inference.prediction import predict  # noqa: E402
from sktuning.serving import Registry, create_app  # noqa: E402
from sktuning.sharing.zoo import load_backbone  # noqa: E402

ADAPTERS = {"sentiment": ("prefix", ["no", "yes"]), "topic": ("prompt", ["a", "b", "c"]),
            "tags": ("prefix", ["N", "V"])}


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    """Three adapters on the tiny Llama: SK-Prefix and SK-Prompt classifiers, an SK-Prefix tagger."""
    out = tmp_path_factory.mktemp("served")
    backbone, tokenizer = load_backbone(tiny_model_dir)
    for i, (name, (mode, labels)) in enumerate(ADAPTERS.items()):
        torch.manual_seed(i)
        task = "token-classification" if name == "tags" else "sequence-classification"
        model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode=mode, text=" ".join(f"w{3 + j}" for j in range(i + 2)),
                                                                 num_labels=len(labels), label_names=labels, task=task))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.2)
        model.save_pretrained(out / name, {"model": tiny_model_dir, "max_length": 16})
    return out


def registry_for(tiny_model_dir, folder) -> Registry:
    backbone, tokenizer = load_backbone(tiny_model_dir)
    registry = Registry(backbone, tokenizer)
    for name in ADAPTERS:
        registry.load(name, str(folder / name))
    return registry


def alone(tiny_model_dir, folder, name, texts):
    backbone, tokenizer = load_backbone(tiny_model_dir)
    model = SKModel.from_pretrained(backbone, folder / name, tokenizer=tokenizer).merge()
    return predict(model, tokenizer, texts, max_length=16).records


def post_together(client, route: str, bodies: dict[str, dict]) -> dict:
    """POST every body at once, from a thread each (so they meet in one batching window)."""
    answers = {}
    threads = [threading.Thread(target=lambda k=k: answers.__setitem__(k, client.post(route, json=bodies[k])))
               for k in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_length_chunks_cut_where_padding_costs_more_than_a_forward():
    import itertools

    from sktuning.serving.batching import length_chunks

    def cost(lengths, chunks, overhead):
        return sum(overhead + (end - start) * lengths[end - 1] for start, end in chunks)

    short_and_long = [5, 5, 6, 60, 61]
    assert length_chunks(short_and_long, 32, overhead=10) == [(0, 3), (3, 5)]  # 10+18 + 10+122 < 10+305
    assert length_chunks(short_and_long, 32, overhead=1000) == [(0, 5)]  # a forward dearer than any padding
    even = length_chunks([7] * 10, 4, overhead=1)
    assert len(even) == 3 and all(end - start <= 4 for start, end in even)  # the fewest forwards of <= 4 rows
    assert length_chunks([], 8, overhead=5) == []
    lengths = [3, 4, 9, 10, 11, 30, 31, 64]
    for overhead, max_rows in ((0, 8), (20, 8), (20, 3), (200, 8)):
        chunks = length_chunks(lengths, max_rows, overhead)
        assert [s for s, _ in chunks[1:]] == [e for _, e in chunks[:-1]] and chunks[0][0] == 0 and chunks[-1][1] == 8
        splits = [[0, *cuts, 8] for k in range(8) for cuts in itertools.combinations(range(1, 8), k)]
        allowed = [list(zip(b, b[1:])) for b in splits if all(e - s <= max_rows for s, e in zip(b, b[1:]))]
        assert cost(lengths, chunks, overhead) == min(cost(lengths, c, overhead) for c in allowed)  # exhaustive


def test_the_forward_overhead_is_measured_in_padded_tokens():
    """A backbone whose forward takes 50 ms plus 0.2 ms per token: one more forward costs 250 tokens."""
    from sktuning.serving.batching import measure_forward_overhead

    class Timed(torch.nn.Module):
        def __init__(self, fixed: float, per_token: float):
            super().__init__()
            self.embed, self.fixed, self.per_token = torch.nn.Embedding(100, 4), fixed, per_token

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids, attention_mask):
            time.sleep(self.fixed + self.per_token * input_ids.numel())

    assert measure_forward_overhead(Timed(0.05, 0.0002)) == pytest.approx(250, rel=0.25)
    assert measure_forward_overhead(Timed(0.0, 0.0002)) < 25  # all cost is per token: cut freely
    assert measure_forward_overhead(Timed(0.05, 0.0), limit=1000) == 1000  # padding is free: never cut


@pytest.mark.parametrize("side", ["right", "left"])
def test_concurrent_requests_for_different_adapters_run_as_one_mixed_batch(tiny_model_dir, folder, side):
    registry = registry_for(tiny_model_dir, folder)
    registry.tokenizer.padding_side = side  # the batch is padded on the tokenizer's side, as predict pads it
    app = create_app(registry, max_wait_ms=1500, max_batch_size=64)
    client = TestClient(app)
    texts = {"sentiment": ["w7 w8 w9", "w10"], "topic": ["w11 w12 w13 w14 w15", "w16 w17"],
             "tags": ["w20 w21 w22", "w23"]}
    answers = post_together(client, "/v1/predict", {name: {"adapter": name, "texts": texts[name]} for name in texts})
    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == len(texts[name])
        for got, want in zip(answer.json()["predictions"], alone(tiny_model_dir, folder, name, texts[name])):
            if name == "tags":
                assert got == want  # a tag per word, as predict gives them
            else:
                assert got["label"] == want["label"]
                assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    metrics = client.get("/metrics").text
    # the three requests met in one forward: one batch of 6 rows from 3 adapters
    assert "sktune_batch_adapters_sum 3.0" in metrics and "sktune_batch_rows_sum 6.0" in metrics, metrics
    assert "sktune_batch_rows_count 1.0" in metrics
    assert 'sktune_requests_total{adapter="topic",endpoint="/v1/predict",status="200"} 1.0' in metrics
    assert 'sktune_texts_total{adapter="tags"} 2.0' in metrics and "sktune_queue_depth 0.0" in metrics
    assert "sktune_request_seconds_bucket" in metrics
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("sktune_")}
    rows = {name: [{"tokens": t.split()} if name == "tags" else {"text": t} for t in texts[name]] for name in texts}
    width = max(len(row["input_ids"]) for name in texts for row in registry.get(name).encoder.encode(rows[name], "t"))
    assert values["sktune_padded_tokens_total"] == 6 * width  # the one forward: 6 rows padded to the longest
    assert 0 < values["sktune_worker_busy_seconds_total"] < 60


def test_concurrent_generate_requests_for_different_adapters_decode_as_one_batch(tmp_path):
    """Two causal-lm adapters (texts of different lengths), prompts of different lengths from two
    requests: one left-padded batch, and every prompt continued as its adapter alone continues it."""
    from conftest import tiny_backbone, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    for i, text in enumerate(("w5 w6", "w11 w12 w13 w14")):
        torch.manual_seed(i)
        model = get_sk_model(tiny_backbone("llama", wrapper="causal-lm"), tokenizer,
                             SKTuningConfig(text=text, task="causal-lm"))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.2)
        model.save_pretrained(tmp_path / f"lm{i}", {"max_length": 16})
    registry = Registry(tiny_backbone("llama", wrapper="causal-lm"), tokenizer)
    for i in range(2):
        registry.load(f"lm{i}", str(tmp_path / f"lm{i}"))
    client = TestClient(create_app(registry, max_wait_ms=300))
    prompts = {"lm0": ["w7 w8 w9 w10 w11", "w9"], "lm1": ["w20 w21"]}
    answers = post_together(client, "/v1/generate",
                            {name: {"adapter": name, "prompts": prompts[name], "max_new_tokens": 5} for name in prompts})
    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        alone_model = SKModel.from_pretrained(tiny_backbone("llama", wrapper="causal-lm"), tmp_path / name).eval()
        for prompt, got in zip(prompts[name], answer.json()["generations"]):
            ids = tokenizer([prompt], return_tensors="pt")["input_ids"]
            out = alone_model.generate(ids, max_new_tokens=5, eos_token_id=tokenizer.eos_token_id,
                                       pad_token_id=tokenizer.pad_token_id)
            assert got == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    metrics = client.get("/metrics").text
    assert "sktune_batch_rows_count 1.0" in metrics and "sktune_batch_rows_sum 3.0" in metrics, metrics
    assert "sktune_batch_adapters_sum 2.0" in metrics


def test_a_full_queue_answers_503_with_retry_after_and_the_server_recovers(tiny_model_dir, folder):
    registry = registry_for(tiny_model_dir, folder)
    app = create_app(registry, max_wait_ms=0, max_queue=1)
    client = TestClient(app)
    batcher = app.state.batcher
    answers = []
    body = {"adapter": "sentiment", "texts": ["w7 w8"]}

    def ask():
        answers.append(client.post("/v1/predict", json=body))

    with registry.lock:  # the worker is busy: it takes the first request and waits for the model
        first = threading.Thread(target=ask)
        first.start()
        wait_for(lambda: batcher.taken == 1, "the worker to take the first request")
        second = threading.Thread(target=ask)
        second.start()
        wait_for(lambda: batcher.depth() == 1, "the second request to be queued")
        flood = [client.post("/v1/predict", json=body) for _ in range(5)]
        assert {a.status_code for a in flood} == {503}
        assert flood[0].headers["retry-after"] == "1" and "1 requests are queued already" in flood[0].json()["error"]
    first.join()
    second.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert client.get("/health").json() == {"status": "ok", "adapters": 3, "queued": 0}
    assert "sktune_rejected_total 5.0" in client.get("/metrics").text


def test_an_adapter_removed_while_its_request_waits_still_answers_it(tiny_model_dir, folder):
    registry = registry_for(tiny_model_dir, folder)
    app = create_app(registry, max_wait_ms=0)
    client = TestClient(app)
    answers = []
    with registry.lock:
        asking = threading.Thread(target=lambda: answers.append(
            client.post("/v1/predict", json={"adapter": "topic", "texts": ["w7"]})))
        asking.start()
        wait_for(lambda: app.state.batcher.taken == 1, "the request to reach the worker")
        assert client.delete("/v1/adapters/topic").json() == {"unloaded": "topic"}
    asking.join()
    assert answers[0].status_code == 200 and answers[0].json()["predictions"][0]["label"] in ("a", "b", "c")
    assert client.post("/v1/predict", json={"adapter": "topic", "texts": ["w7"]}).status_code == 404
    assert client.post("/v1/predict", json={"adapter": "nope", "texts": ["w7"]}).status_code == 404
    metrics = client.get("/metrics").text  # a name a client made up never becomes a label
    assert 'adapter="nope"' not in metrics and 'endpoint="/v1/predict",status="404"} 2.0' in metrics


def test_a_failing_request_fails_alone(tiny_model_dir, folder):
    """A request the model cannot run (here: a token id past the embedding table, forced in) errors,
    while the request it was batched with is answered."""
    registry = registry_for(tiny_model_dir, folder)
    app = create_app(registry, max_wait_ms=300)
    batcher = app.state.batcher
    good = batcher.submit(registry.get("sentiment"), registry.get("sentiment").encoder.encode([{"text": "w7"}]))
    bad = batcher.submit(registry.get("topic"), [{"input_ids": [10 ** 6], "attention_mask": [1]}])
    assert len(good.result(timeout=30)) == 1
    with pytest.raises(IndexError):
        bad.result(timeout=30)
    batcher.close(timeout=30)
    assert not batcher.thread.is_alive()


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_sigterm_finishes_the_requests_in_flight_and_exits_0(tiny_model_dir, folder):
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sktuning.cli", "serve", "--adapter", f"a={folder / 'sentiment'}",
                               "--adapter", f"b={folder / 'topic'}", "--port", str(port), "--max-wait-ms", "3000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), "the server to start", timeout=120)
        answers = []
        threads = [threading.Thread(target=lambda n=n: answers.append(httpx.post(
            f"{url}/v1/predict", json={"adapter": "ab"[n % 2], "texts": [f"w{7 + n}"]}, timeout=60)))
            for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # all 6 sent (on a loaded machine too); they wait in the 3-s batching window
        server.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert server.wait(timeout=60) == 0, server.stderr.read()[-2000:]
        assert [a.status_code for a in answers] == [200] * 6
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", timeout=5)
    finally:
        server.kill()


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.subprocess
def test_an_adapter_of_another_backbone_is_refused_at_start_as_predict_refuses_it(folder, tmp_path):
    from conftest import tiny_backbone, tiny_tokenizer

    other = tmp_path / "tiny-gpt2"
    tiny_backbone("gpt2").save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    adapter = str(folder / "sentiment")
    serve = subprocess.run([sys.executable, "-m", "sktuning.cli", "serve", "--adapter", f"a={adapter}", "--model",
                            str(other), "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    predict_ = subprocess.run([sys.executable, "-m", "sktuning.cli", "predict", "--adapter", adapter, "--model",
                               str(other), "w7"], capture_output=True, text=True, timeout=120)
    assert serve.returncode == predict_.returncode == 2
    message = predict_.stderr.strip().splitlines()[-1].split("error: ", 1)[1]  # after "sktune predict: error: "
    assert "does not fit this backbone" in message and f"sktune serve: error: {message}" in serve.stderr


def test_model_work_runs_on_the_worker_thread_in_queue_order(tiny_model_dir, folder):
    """`call` runs on the worker, after the requests queued before it; an error reaches its caller and the
    worker goes on. Loading an adapter over HTTP is such a call (one thread owns the model)."""
    registry = registry_for(tiny_model_dir, folder)
    app = create_app(registry, max_wait_ms=300)
    batcher, order = app.state.batcher, []
    served = registry.get("sentiment")
    with registry.lock:  # hold the worker so that all four are queued together
        first = batcher.submit(served, served.encoder.encode([{"text": "w7"}]))
        wait_for(lambda: batcher.taken == 1, "the worker to take the first request")
        first.add_done_callback(lambda _: order.append("request"))
        call = batcher.call(lambda: order.append(threading.current_thread().name) or 42)
        failing = batcher.call(lambda: 1 / 0)
        second = batcher.submit(served, served.encoder.encode([{"text": "w8"}]))
    assert call.result(timeout=30) == 42 and order == ["request", "sktune-batcher"]
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=30)
    assert len(second.result(timeout=30)) == 1 and batcher.alive()

    threads = []
    load = registry.load
    registry.load = lambda *a: threads.append(threading.current_thread().name) or load(*a)
    client = TestClient(app)
    answer = client.post("/v1/adapters", json={"name": "more", "path": str(folder / "topic")})
    assert answer.status_code == 200 and answer.json()["name"] == "more" and threads == ["sktune-batcher"]
    assert client.post("/v1/predict", json={"adapter": "more", "texts": ["w7"]}).status_code == 200
