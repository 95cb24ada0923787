"""`sktune serve`: SK adapters on one backbone over HTTP (the `serve` extra: FastAPI, uvicorn)."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

from sktuning.cli.options import add_device, positive_int


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve adapters over HTTP on one backbone",
                           description="Serve SK adapters on one frozen backbone: POST /v1/predict, /v1/generate; "
                                       "GET/POST/DELETE /v1/adapters; GET /health, /metrics; a page to try "
                                       "them at GET /. Requests for any adapters that arrive together run as "
                                       "one mixed batch.")
    serve.add_argument("--adapter", action="append", required=True, metavar="NAME=DIR",
                       help="an adapter to serve under NAME (repeat for more)")
    serve.add_argument("--model", help="the backbone (default: the one the first adapter records)")
    add_device(serve)
    serve.add_argument("--host", default="127.0.0.1", help="(default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=positive_int, default=8000)
    serve.add_argument("--api-key", default=os.environ.get("SKTUNE_API_KEY"),
                       help="require 'Authorization: Bearer KEY' on every request (default: $SKTUNE_API_KEY)")
    serve.add_argument("--max-body-bytes", type=positive_int, default=1_000_000)
    serve.add_argument("--max-batch-size", type=positive_int, default=32,
                       help="most texts in one backbone forward (default 32)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="how long the first queued request waits for others to batch with (default 5)")
    serve.add_argument("--max-queue", type=positive_int, default=256,
                       help="requests that may wait; more get 503 with Retry-After (default 256)")
    serve.add_argument("--forward-overhead-tokens", type=int, metavar="N",
                       help="what one more backbone forward costs, in padded tokens: a batch is cut where padding "
                            "would cost more (default: measured at start on this backbone and device)")
    serve.set_defaults(handler=run)


def parse_adapters(items: list[str]) -> dict[str, str]:
    adapters: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--adapter {item!r}: give NAME=DIR, e.g. --adapter sentiment=runs/rt/adapter.")
        if name in adapters:
            raise UsageError(f"--adapter {name!r} is given twice; give each adapter its own name.")
        adapters[name] = path
    return adapters


def run(args: argparse.Namespace) -> int:
    adapters = parse_adapters(args.adapter)  # bad options fail before anything loads
    if args.forward_overhead_tokens is not None and args.forward_overhead_tokens < 0:
        raise UsageError(f"--forward-overhead-tokens must be >= 0, got {args.forward_overhead_tokens}.")
    from sktuning.cli.common import load_model, quiet_libraries
    from sktuning.core.extras import require
    from sktuning.core.adapter_format import read_adapter_meta
    from sktuning.serving import Registry, create_app
    from sktuning.serving.batching import measure_forward_overhead
    from sktuning.training.spec import AdapterRecord

    quiet_libraries()
    uvicorn = require("uvicorn", "serve")
    first = AdapterRecord.from_meta(read_adapter_meta(next(iter(adapters.values()))))
    model_name = args.model or first.model
    if not model_name:
        raise UsageError("The first adapter does not record its backbone; pass --model.")

    def start() -> tuple[Registry, int]:
        # held as the adapters were trained (int8 / nf4 / full); an adapter trained otherwise is refused
        backbone, tokenizer = load_model(model_name, args.trust_remote_code, args.device, quantize=first.quantize)
        registry = Registry(backbone, tokenizer)
        for name, path in adapters.items():
            registry.load(name, path)
        overhead = args.forward_overhead_tokens
        return registry, measure_forward_overhead(backbone) if overhead is None else overhead

    # on a thread that exits before serving, taking its OpenMP pool with it: the batching worker's forwards
    # run 24-44 % slower while another thread's pool exists (sktuning/serving/batching.py)
    with ThreadPoolExecutor(1, thread_name_prefix="sktune-start") as starter:
        registry, overhead = starter.submit(start).result()
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    app = create_app(registry, api_key=args.api_key, max_body_bytes=args.max_body_bytes,
                     max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                     allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None,
                     forward_overhead_tokens=overhead)
    print(f"serving {', '.join(adapters)} on http://{args.host}:{args.port} (one more forward costs what {overhead} "
          "padded tokens cost: batches are cut where padding costs more)", flush=True)
    # SIGTERM / Ctrl-C: uvicorn stops accepting, finishes the requests in flight, then the app drains its queue
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=60)
    return 0
