"""`sktune serve`'s app: adapters on one backbone answer as `predict` does, and bad input gets a 4xx
JSON error, never a crash."""

import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from sktuning import SKTuningConfig, get_sk_model  # noqa: E402
from sktuning.inference.prediction import predict  # noqa: E402
from sktuning.serving import Registry, create_app  # noqa: E402
from sktuning.sharing.zoo import load_backbone  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    backbone, tokenizer = load_backbone(tiny_model_dir)
    for name, mode, labels in (("sentiment", "prefix", ["no", "yes"]), ("topic", "prompt", ["a", "b", "c"])):
        torch.manual_seed(len(name))
        model = get_sk_model(backbone, tokenizer, SKTuningConfig(mode=mode, text="w3 w4", num_labels=len(labels),
                                                                label_names=labels))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.1)
        model.save_pretrained(folder / name, {"model": tiny_model_dir, "max_length": 16})
    backbone, tokenizer = load_backbone(tiny_model_dir)
    registry = Registry(backbone, tokenizer)
    for name in ("sentiment", "topic"):
        registry.load(name, str(folder / name))
    return registry, folder, tiny_model_dir


def test_predictions_equal_predict_with_each_adapter_alone(served):
    registry, folder, tiny_model_dir = served
    client = TestClient(create_app(registry))
    texts = ["w7 w8 w9", "w10", "w11 w12 w13 w14"]
    for name in ("sentiment", "topic"):
        answer = client.post("/v1/predict", json={"adapter": name, "texts": texts})
        assert answer.status_code == 200, answer.text
        backbone, tokenizer = load_backbone(tiny_model_dir)
        from sktuning import SKModel

        alone = predict(SKModel.from_pretrained(backbone, folder / name, tokenizer=tokenizer).merge(), tokenizer, texts,
                        max_length=16).records
        for got, want in zip(answer.json()["predictions"], alone):
            assert got["label"] == want["label"]
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    listing = client.get("/v1/adapters").json()["adapters"]
    assert [a["name"] for a in listing] == ["sentiment", "topic"] and listing[1]["labels"] == ["a", "b", "c"]


@pytest.mark.parametrize("request_, status, message", [
    ({"adapter": "nope", "texts": ["w7"]}, 404, "No adapter 'nope'"),
    ({"adapter": "sentiment", "texts": [""]}, 400, "text 0 is empty"),
    ({"adapter": "sentiment", "texts": ["w7", "w8 " * 9000]}, 400, "text 1 has 27000 characters; the limit is 20000"),
    ({"adapter": "sentiment", "texts": "w7"}, 422, ""),
    ({"adapter": "sentiment", "texts": []}, 422, ""),
    ({"adapter": "sentiment", "texts": ["w7"] * 300}, 400, "the limit is 256"),
    ({"adapter": "sentiment", "texts": ["w7"], "text_pairs": ["a", "b"]}, 400, "one per text"),
])
def test_bad_requests_get_4xx_json_and_the_server_stays_healthy(served, request_, status, message):
    client = TestClient(create_app(served[0]))
    answer = client.post("/v1/predict", json=request_)
    assert answer.status_code == status and message in str(answer.json())
    assert client.get("/health").json()["status"] == "ok"


def test_malformed_json_a_big_body_and_a_missing_key_are_refused(served):
    client = TestClient(create_app(served[0], api_key="secret", max_body_bytes=200))
    assert client.get("/health").status_code == 401
    auth = {"Authorization": "Bearer secret"}
    assert client.post("/v1/predict", content=b"{not json", headers={**auth, "content-type": "application/json"}
                       ).status_code == 422
    big = client.post("/v1/predict", json={"adapter": "sentiment", "texts": ["w7 " * 100]}, headers=auth)
    assert big.status_code == 413 and "200 bytes" in big.json()["error"]
    assert client.get("/health", headers=auth).json() == {"status": "ok", "adapters": 2, "queued": 0}
    metrics = client.get("/metrics", headers=auth).text  # refused before any route: counted, with their status
    for status, count in (("401", 1), ("413", 1), ("422", 1), ("200", 1)):
        assert len([line for line in metrics.splitlines() if line.startswith("sktune_requests_total")
                    and f'status="{status}"' in line and line.endswith(f" {count}.0")]) == 1, (status, metrics)


def test_chunked_bodies_foreign_hosts_and_adapters_trained_quantized_are_refused(served, tmp_path):
    registry, folder, tiny_model_dir = served
    client = TestClient(create_app(registry))
    chunked = client.post("/v1/predict", content=iter([b'{"adapter": "sentiment", ', b'"texts": ["w7"]}']),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["error"]
    local_only = TestClient(create_app(registry, allowed_hosts=["127.0.0.1", "localhost"]))
    assert local_only.get("/health").status_code == 400  # Host: testserver, as a rebound DNS name would send
    assert local_only.get("/health", headers={"host": "127.0.0.1:8000"}).status_code == 200
    import json

    meta = json.loads((folder / "sentiment" / "sk_config.json").read_text())
    meta["training"]["quantize"] = "nf4"
    (tmp_path / "q").mkdir()
    for name in ("model.safetensors",):
        (tmp_path / "q" / name).write_bytes((folder / "sentiment" / name).read_bytes())
    (tmp_path / "q" / "sk_config.json").write_text(json.dumps(meta))
    answer = client.post("/v1/adapters", json={"name": "q", "path": str(tmp_path / "q")})
    assert answer.status_code == 400 and "trained on a backbone held in nf4" in answer.json()["error"]


def test_adapters_are_added_and_removed_while_serving(served):
    registry, folder, _ = served
    client = TestClient(create_app(registry))
    assert client.post("/v1/adapters", json={"name": "again", "path": str(folder / "sentiment")}).status_code == 200
    assert client.post("/v1/adapters", json={"name": "again", "path": str(folder / "sentiment")}).status_code == 400
    assert client.post("/v1/predict", json={"adapter": "again", "texts": ["w7"]}).status_code == 200
    assert client.delete("/v1/adapters/again").json() == {"unloaded": "again"}
    assert client.delete("/v1/adapters/again").status_code == 404
    assert client.post("/v1/adapters", json={"name": "x", "path": "/nowhere"}).status_code == 400


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generate_continues_prompts_with_a_causal_lm_adapter(tmp_path, arch):
    from conftest import tiny_backbone, tiny_tokenizer

    from sktuning import SKModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model = get_sk_model(tiny_backbone(arch, wrapper="causal-lm"), tokenizer,
                         SKTuningConfig(text="w5 w6", task="causal-lm"))
    model.save_pretrained(tmp_path / "lm", {"max_length": 16})
    registry = Registry(tiny_backbone(arch, wrapper="causal-lm"), tokenizer)
    registry.load("lm", str(tmp_path / "lm"))
    client = TestClient(create_app(registry))
    answer = client.post("/v1/generate", json={"adapter": "lm", "prompts": ["w7 w8", "w9"], "max_new_tokens": 4})
    assert answer.status_code == 200, answer.text
    alone = SKModel.from_pretrained(tiny_backbone(arch, wrapper="causal-lm"), tmp_path / "lm").eval()
    ids = tokenizer(["w7 w8"], return_tensors="pt")["input_ids"]
    out = alone.generate(ids, max_new_tokens=4, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    assert answer.json()["generations"][0] == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    refused = client.post("/v1/generate", json={"adapter": "lm", "prompts": ["w7"], "max_new_tokens": 0})
    assert refused.status_code == 422
    if arch == "gpt2":  # a learned position table of 128: prefix, prompt and new tokens must fit in it
        too_long = client.post("/v1/generate", json={"adapter": "lm", "prompts": ["w7"], "max_new_tokens": 1000})
        assert too_long.status_code == 400 and "do not fit" in too_long.json()["error"]
    assert client.get("/health").json()["status"] == "ok"


def test_refused_bodies_are_read_to_the_end_so_every_client_gets_its_status(served):
    """A 2 MB body over a 1 MB limit, or sent with a wrong key, gets its 413 / 401 JSON from a real server
    on loopback with urllib, requests and httpx: never a broken pipe or a reset connection (the server
    reads what it refuses before it answers)."""
    import json
    import socket
    import threading
    import urllib.error
    import urllib.request

    import httpx
    import requests
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(served[0], api_key="secret"), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        url = f"http://127.0.0.1:{port}/v1/predict"
        body = json.dumps({"adapter": "sentiment", "texts": ["w7 " * 1000] * 700}).encode()  # about 2.1 MB
        assert len(body) > 2_000_000

        def with_urllib(headers):
            try:
                urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30)
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())["error"]

        def with_requests(headers):
            answer = requests.post(url, data=body, headers=headers, timeout=30)
            return answer.status_code, answer.json()["error"]

        def with_httpx(headers):
            answer = httpx.post(url, content=body, headers=headers, timeout=30)
            return answer.status_code, answer.json()["error"]

        key = {"Authorization": "Bearer secret", "Content-Type": "application/json"}
        wrong = {"Authorization": "Bearer nope", "Content-Type": "application/json"}
        errors, answers = 0, set()
        for client in (with_urllib, with_requests, with_httpx):
            for headers in (key, wrong):
                for _ in range(8):
                    try:
                        status, message = client(headers)
                    except (OSError, requests.ConnectionError, httpx.TransportError):
                        errors += 1
                        continue
                    answers.add((status, message.split(":")[0]))
        assert errors == 0
        assert answers == {(413, "The request body is over the limit of 1000000 bytes."),
                           (401, "Missing or wrong API key")}
    finally:
        server.should_exit = True
        thread.join(10)
