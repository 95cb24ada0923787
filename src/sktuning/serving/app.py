"""The HTTP face of `sktune serve`, on FastAPI: routes, errors, the page at GET /.

`/v1/predict` encodes texts with the adapter's own encoder (cut to its `max_length`, as `predict`
cuts them), queues them for the batching worker and answers `predict()`'s records, so a served label
is the label `sktune predict` gives. Bad input gets a 4xx JSON error naming the problem: an unknown
adapter (404), an empty or over-long text, too many texts, mismatched pairs (400), wrong types or
malformed JSON (422), a body over the size limit (413), a missing or wrong API key (401); a full
queue gets 503 with Retry-After. Nothing a client sends reaches the model unchecked.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sktuning.core.extras import require

require("fastapi", "serve")
require("prometheus_client", "serve")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402
from starlette.datastructures import Headers  # noqa: E402

from sktuning.core.tasks import TASKS, task_of  # noqa: E402
from sktuning.inference.prediction import to_records  # noqa: E402
from sktuning.serving.batching import FORWARD_OVERHEAD_TOKENS, Batcher, QueueFull  # noqa: E402
from sktuning.serving.metrics import ServerMetrics  # noqa: E402
from sktuning.serving.registry import Registry, Served, UnknownAdapter  # noqa: E402

MAX_TEXTS = 256
MAX_TEXT_CHARS = 20_000
#: the page carries no data, so it loads without the API key (it asks for the key and sends it)
OPEN_PATHS = ("/",)


class PredictRequest(BaseModel):
    adapter: str
    texts: list[str] = Field(min_length=1)
    text_pairs: list[str] | None = None


class GenerateRequest(BaseModel):
    adapter: str
    prompts: list[str] = Field(min_length=1)
    max_new_tokens: int = Field(default=20, ge=1, le=1024)
    temperature: float = Field(default=1.0, gt=0)
    top_k: int | None = Field(default=None, ge=0)
    do_sample: bool = False


class LoadRequest(BaseModel):
    name: str
    path: str


def create_app(registry: Registry, api_key: str | None = None, max_body_bytes: int = 1_000_000,
               max_texts: int = MAX_TEXTS, max_text_chars: int = MAX_TEXT_CHARS, max_batch_size: int = 32,
               max_wait_ms: float = 5.0, max_queue: int = 256, allowed_hosts: list[str] | None = None,
               forward_overhead_tokens: int = FORWARD_OVERHEAD_TOKENS) -> FastAPI:
    """The app over `registry`; its batching worker starts now and drains its queue at shutdown.
    `allowed_hosts`: the Host headers accepted (a server on 127.0.0.1 takes only its own names, so a web
    page elsewhere cannot reach it by DNS rebinding). `forward_overhead_tokens`: what one more forward costs,
    in padded tokens (`batching.measure_forward_overhead`); the batcher cuts batches where padding costs more."""
    metrics = ServerMetrics(lambda: batcher.depth(), lambda: len(registry.served))
    batcher = Batcher(registry, max_batch_size, max_wait_ms, max_queue, metrics, forward_overhead_tokens)

    @asynccontextmanager
    async def lifespan(_):
        yield
        await asyncio.to_thread(batcher.close)  # uvicorn has finished the requests in flight: drain, stop

    app = FastAPI(title="sktune serve", lifespan=lifespan)
    app.state.batcher, app.state.metrics = batcher, metrics

    app.add_middleware(Guard, metrics=metrics, api_key=api_key, max_body_bytes=max_body_bytes)

    @app.exception_handler(UnknownAdapter)
    async def unknown(_, err: UnknownAdapter):
        return JSONResponse({"error": str(err.args[0])}, 404)

    @app.exception_handler(ValueError)
    async def refused(_, err: ValueError):
        return JSONResponse({"error": str(err)}, 400)

    @app.exception_handler(QueueFull)
    async def busy(_, err: QueueFull):
        return JSONResponse({"error": str(err)}, 503, headers={"Retry-After": "1"})

    def adapter_of(request: Request, name: str) -> Served:
        served = registry.get(name)
        request.state.adapter = name  # a served name only: metric labels stay bounded
        return served

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("sktuning.serving").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> JSONResponse:
        if not batcher.alive():
            return JSONResponse({"status": "the batching worker has stopped", "adapters": len(registry.served)}, 503)
        return JSONResponse({"status": "ok", "adapters": len(registry.served), "queued": batcher.depth()})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/adapters")
    def adapters() -> dict[str, Any]:
        return {"adapters": [registry.describe(name) for name in sorted(registry.served)]}

    @app.post("/v1/adapters")
    async def load(body: LoadRequest) -> dict[str, Any]:
        if not Path(body.path).is_dir():
            raise UsageError(f"{body.path} is not a folder on the server; give an adapter folder's path.")
        # on the worker thread, which owns the model (batching.py says why)
        served = await asyncio.wrap_future(batcher.call(registry.load, body.name, body.path))
        return served.describe()

    @app.delete("/v1/adapters/{name}")
    def unload(name: str) -> dict[str, Any]:
        registry.unload(name)  # requests already queued for it hold the adapter and are still answered
        return {"unloaded": name}

    @app.post("/v1/predict")
    async def predict_texts(body: PredictRequest, request: Request) -> dict[str, Any]:
        served = adapter_of(request, body.adapter)
        config = served.config
        task = task_of(config)
        if task.generates:
            raise UsageError(f"Adapter {body.adapter!r} is a {config.task} adapter; use /v1/generate.")
        _check_texts(body.texts, max_texts, max_text_chars, "text")
        if body.text_pairs is not None:
            if len(body.text_pairs) != len(body.texts):
                raise UsageError(f"{len(body.text_pairs)} text_pairs for {len(body.texts)} texts; give one per text.")
            _check_texts(body.text_pairs, max_texts, max_text_chars, "text_pair")
        rows = ([{"text": t} for t in body.texts] if body.text_pairs is None
                else [{"text": t, "text_pair": p} for t, p in zip(body.texts, body.text_pairs)])
        rows = task.prediction_rows(rows)
        encoded = served.encoder.encode(rows, "request")
        outputs = await asyncio.wrap_future(batcher.submit(served, encoded))
        predictions, probabilities = zip(*outputs)
        metrics.texts.labels(body.adapter).inc(len(rows))
        return {"predictions": to_records(config, rows, encoded, predictions, probabilities)}

    @app.post("/v1/generate")
    async def generate(body: GenerateRequest, request: Request) -> dict[str, Any]:
        served = adapter_of(request, body.adapter)
        if not task_of(served.config).generates:
            writers = ", ".join(t.name for t in TASKS if t.generates)
            raise UsageError(f"Adapter {body.adapter!r} is a {served.config.task} adapter; /v1/generate takes "
                             f"{writers} adapters (use /v1/predict).")
        _check_texts(body.prompts, max_texts, max_text_chars, "prompt")
        tokenizer = registry.tokenizer
        batch = tokenizer(body.prompts, padding=True, return_tensors="pt", truncation=True,
                          max_length=served.encoder.max_length, padding_side="left",
                          add_special_tokens=served.adapter.model.start_token is None)
        settings = {"max_new_tokens": body.max_new_tokens, "do_sample": body.do_sample,
                    "temperature": body.temperature, "top_k": body.top_k, "eos_token_id": tokenizer.eos_token_id,
                    "pad_token_id": tokenizer.pad_token_id}
        # the worker refuses (400) prompts that, with the new tokens, overrun a learned position table
        new_tokens = await asyncio.wrap_future(batcher.submit_generate(served, batch["input_ids"],
                                                                       batch["attention_mask"], **settings))
        metrics.texts.labels(body.adapter).inc(len(body.prompts))
        return {"generations": tokenizer.batch_decode(new_tokens, skip_special_tokens=True)}

    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    return app


class Guard:
    """Every request but the page's: the API key and the body's size checked before any route reads it,
    then its status and latency counted (endpoint, adapter). Plain ASGI: Starlette's `@app.middleware`
    would add a task and a stream to every request."""

    def __init__(self, app, metrics: ServerMetrics, api_key: str | None, max_body_bytes: int):
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.expected = f"Bearer {api_key}".encode() if api_key is not None else None

    def refusal(self, method: str, headers: Headers) -> JSONResponse | None:
        length = headers.get("content-length")
        if self.expected is not None and not hmac.compare_digest(headers.get("authorization", "").encode(),
                                                                 self.expected):
            return JSONResponse({"error": "Missing or wrong API key: send 'Authorization: Bearer <key>'."}, 401)
        if method in ("POST", "PUT", "PATCH") and length is None:  # a chunked body could be any size
            return JSONResponse({"error": "Send the body with a Content-Length header (no chunked bodies)."}, 411)
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return JSONResponse({"error": f"The request body is over the limit of {self.max_body_bytes} bytes."}, 413)
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500  # 500 unless a response starts: an error no handler took

        async def noted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self.refusal(scope["method"], Headers(scope=scope))
            if refusal is not None:
                # read what the client sends before answering: a server that answers and closes while the
                # client is still sending makes many clients see a broken pipe instead of the status
                await drain(receive, DRAIN_LIMIT)
                refusal.headers["connection"] = "close"
            await (refusal or self.app)(scope, receive, noted)
        finally:
            route = scope.get("route")  # set by the router on this same scope
            self.metrics.observe_request(getattr(route, "path", "unmatched"), scope.get("state", {}).get("adapter", ""),
                                         status, time.perf_counter() - started)


#: the most of a refused body the server reads (and throws away) before answering; past it, it answers anyway
DRAIN_LIMIT = 64 * 1024 * 1024


async def drain(receive, limit: int) -> None:
    """Read and discard the request body, up to `limit` bytes or the client's disconnect."""
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _check_texts(texts: list[str], limit: int, max_chars: int, what: str) -> None:
    if len(texts) > limit:
        raise UsageError(f"{len(texts)} {what}s in one request; the limit is {limit}: split the request.")
    for i, text in enumerate(texts):
        if not text.strip():
            raise UsageError(f"{what} {i} is empty; give text.")
        if len(text) > max_chars:
            raise UsageError(f"{what} {i} has {len(text)} characters; the limit is {max_chars} "
                             "(longer inputs are cut to the adapter's max_length tokens anyway).")
