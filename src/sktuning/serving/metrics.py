"""GET /metrics: the server's counters in Prometheus' text format (prometheus_client, one registry per
app so that two apps in one process, as in tests, count apart).

Per adapter: requests by endpoint and status, latency, texts. Per batch: rows and distinct adapters
in each backbone forward (how well dynamic batching mixes), the padded tokens it computed, and the time
the worker spent running batches (its share of wall time: how busy the backbone is). The queue's depth is read when scraped.
An adapter label is only ever the name of a served adapter, never a string a client made up.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int], adapters: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sktune_requests", "HTTP requests answered", ["endpoint", "adapter", "status"], registry=r)
        self.latency = Histogram("sktune_request_seconds", "Time from request to answer", ["endpoint", "adapter"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("sktune_texts", "Texts and prompts answered", ["adapter"], registry=r)
        self.batch_rows = Histogram("sktune_batch_rows", "Rows in each backbone forward", buckets=SIZE_BUCKETS,
                                    registry=r)
        self.batch_adapters = Histogram("sktune_batch_adapters", "Distinct adapters in each backbone forward",
                                        buckets=SIZE_BUCKETS, registry=r)
        self.padded_tokens = Counter("sktune_padded_tokens", "Tokens the backbone computed, padding included "
                                     "(rows x width of each forward)", registry=r)
        self.worker_seconds = Counter("sktune_worker_busy_seconds", "Time the batching worker spent running batches "
                                      "(against wall time: how busy the backbone is)", registry=r)
        self.rejected = Counter("sktune_rejected", "Requests refused with 503 because the queue was full", registry=r)
        Gauge("sktune_queue_depth", "Requests waiting for the batching worker", registry=r).set_function(queue_depth)
        Gauge("sktune_adapters", "Adapters served", registry=r).set_function(adapters)

    def observe_batch(self, rows: int, adapters: int, padded_tokens: int) -> None:
        self.batch_rows.observe(rows)
        self.batch_adapters.observe(adapters)
        self.padded_tokens.inc(padded_tokens)

    def observe_request(self, endpoint: str, adapter: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, adapter, str(status)).inc()
        self.latency.labels(endpoint, adapter).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
