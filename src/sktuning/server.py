"""`sktune serve`: SK adapters on one frozen backbone over HTTP, on FastAPI and uvicorn.

Every adapter is loaded onto the one backbone (`SKModel.from_pretrained` on it: the same checks as
`predict`, so an adapter of another backbone is refused), and can be added or removed while serving
without reloading the backbone. `/v1/predict` answers with `predict()`'s records for that adapter, so
a served label is the label `sktune predict` gives. Requests run one at a time on the model (a lock):
this first version does not yet batch requests of different adapters together
(`sktuning.multi_adapter` is the piece that will).

Bad input gets a 4xx JSON error naming the problem: an unknown adapter (404), an empty text, a text of
the wrong type or too many texts (400 / 422), a body over the size limit (413), a missing or wrong API
key (401). Nothing a client sends reaches the model unchecked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sktuning.extras import require

fastapi = require("fastapi", "serve")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from sktuning.model import SKModel, read_adapter_meta  # noqa: E402
from sktuning.prediction import predict  # noqa: E402

MAX_TEXTS = 256


class UnknownAdapter(LookupError):
    """A request names an adapter that is not served (404)."""


class Registry:
    """The backbone, its tokenizer, and the adapters served on it by name."""

    def __init__(self, backbone, tokenizer):
        self.backbone, self.tokenizer = backbone, tokenizer
        self.adapters: dict[str, tuple[SKModel, int, str]] = {}  # model, max_length, folder
        self.lock = threading.Lock()

    def load(self, name: str, path: str) -> None:
        if not name or "/" in name:
            raise ValueError(f"Adapter name {name!r}: give a non-empty name without '/'.")
        if name in self.adapters:
            raise ValueError(f"An adapter named {name!r} is already served; unload it first.")
        max_length = (read_adapter_meta(path).get("training") or {}).get("max_length") or 128
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"{path} records max_length {max_length!r}; it must be a whole number >= 1.")
        model = SKModel.from_pretrained(self.backbone, path, tokenizer=self.tokenizer).eval().merge()
        with self.lock:
            self.adapters[name] = (model, max_length, str(path))

    def unload(self, name: str) -> None:
        with self.lock:
            self.get(name)
            del self.adapters[name]

    def get(self, name: str) -> tuple[SKModel, int, str]:
        if name not in self.adapters:
            raise UnknownAdapter(f"No adapter {name!r}; serving: {', '.join(sorted(self.adapters)) or 'none'}.")
        return self.adapters[name]

    def describe(self, name: str) -> dict[str, Any]:
        model, max_length, path = self.get(name)
        config = model.sk_config
        return {"name": name, "path": path, "task": config.task, "mode": config.mode, "adapter": config.adapter,
                "labels": config.label_names, "text": config.text, "max_length": max_length,
                "parameters": sum(t.numel() for k, t in model.trainable_state_dict().items()
                                  if k != "semantic.text_input_ids")}


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
               max_texts: int = MAX_TEXTS) -> FastAPI:
    app = FastAPI(title="sktune serve")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": "Missing or wrong API key: send 'Authorization: Bearer <key>'."}, 401)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return JSONResponse({"error": f"The request body is over the limit of {max_body_bytes} bytes."}, 413)
        return await call_next(request)

    @app.exception_handler(UnknownAdapter)
    async def unknown(_, err: UnknownAdapter):
        return JSONResponse({"error": str(err.args[0])}, 404)

    @app.exception_handler(ValueError)
    async def refused(_, err: ValueError):
        return JSONResponse({"error": str(err)}, 400)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "adapters": len(registry.adapters)}

    @app.get("/v1/adapters")
    def adapters() -> dict[str, Any]:
        return {"adapters": [registry.describe(name) for name in sorted(registry.adapters)]}

    @app.post("/v1/adapters")
    def load(body: LoadRequest) -> dict[str, Any]:
        if not Path(body.path).is_dir():
            raise ValueError(f"{body.path} is not a folder on the server; give an adapter folder's path.")
        registry.load(body.name, body.path)
        return registry.describe(body.name)

    @app.delete("/v1/adapters/{name}")
    def unload(name: str) -> dict[str, Any]:
        registry.unload(name)
        return {"unloaded": name}

    @app.post("/v1/predict")
    def predict_texts(body: PredictRequest) -> dict[str, Any]:
        model, max_length, _ = registry.get(body.adapter)
        _check_count(len(body.texts), max_texts)
        if body.text_pairs is not None and len(body.text_pairs) != len(body.texts):
            raise ValueError(f"{len(body.text_pairs)} text_pairs for {len(body.texts)} texts; give one per text.")
        inputs: list = body.texts if body.text_pairs is None else [
            {"text": t, "text_pair": p} for t, p in zip(body.texts, body.text_pairs)]
        with registry.lock:
            result = predict(model, registry.tokenizer, inputs, max_length=max_length)
        return {"predictions": result.records}

    @app.post("/v1/generate")
    def generate(body: GenerateRequest) -> dict[str, Any]:
        model, max_length, _ = registry.get(body.adapter)
        if model.sk_config.task != "causal-lm":
            raise ValueError(f"Adapter {body.adapter!r} is a {model.sk_config.task} adapter; /v1/generate takes "
                             "causal-lm adapters (use /v1/predict).")
        _check_count(len(body.prompts), max_texts)
        if any(not p.strip() for p in body.prompts):
            raise ValueError("A prompt is empty; give text to continue.")
        tokenizer = registry.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            batch = tokenizer(body.prompts, padding=True, return_tensors="pt", truncation=True,
                              max_length=max_length, add_special_tokens=model.start_token is None)
        finally:
            tokenizer.padding_side = side
        with registry.lock:
            out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=body.max_new_tokens,
                                 do_sample=body.do_sample, temperature=body.temperature, top_k=body.top_k,
                                 pad_token_id=tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        return {"generations": tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)}

    return app


def _check_count(count: int, limit: int) -> None:
    if count > limit:
        raise ValueError(f"{count} texts in one request; the limit is {limit}: split the request.")
