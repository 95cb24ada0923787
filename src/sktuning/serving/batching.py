"""Dynamic batching: requests for any adapters, queued within a few milliseconds of each other, run as
one mixed batch through the backbone.

One worker thread owns the model: every computation on it runs there, batches and also loading an
adapter (`call`: merging runs the backbone over the adapter's text). Not only for order: OpenMP gives
each thread that runs a parallel op a pool of threads of its own, and once a second pool exists beside
the worker's, every forward ran 24-44 % slower on a 2-core CPU (`benchmarks/serve.py --only pools`;
libgomp throttles its spin-waiting when it counts more threads than cores). `sktune serve` loads on a
thread that exits before serving, for the same reason.

The worker takes the oldest request, waits up to `max_wait_ms` for more (until `max_batch_size` texts
are gathered), sorts the gathered texts by length, and runs them in mixed batches of at most
`max_batch_size` rows, cut where padding would cost more than another forward (`length_chunks`):
`MultiAdapterModel` gives every row its own adapter's prefix and head in one forward. Generate requests
with the same decoding settings are decoded together the same way, their prompts padded on the left.
The queue is bounded (`max_queue` requests): a full queue refuses at once (`QueueFull`, a 503 with
Retry-After) instead of growing without limit. `close()` lets the worker finish everything already
queued, then stops it (graceful shutdown).

A request that fails (say, a text the backbone cannot read) fails alone: the rows it shared a batch
with are run again without it.
"""

from __future__ import annotations

from sktuning.core.errors import UsageError

import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from sktuning.core.tasks import task_of
from sktuning.serving.registry import Registry, Served

_STOP = object()


#: what one more backbone forward costs beyond its tokens, in padded tokens, where nothing measured it
#: (`sktune serve` measures it at start: `measure_forward_overhead`)
FORWARD_OVERHEAD_TOKENS = 32


def measure_forward_overhead(backbone, repeats: int = 3, limit: int = 4096) -> int:
    """Padded tokens that cost what one more forward costs, on this backbone and device: from the times
    of a small forward (1 x 8 tokens) and a large one (8 x 64). A CPU does little per forward beyond its
    tokens; a GPU a lot (so there, batches are rarely cut). Cut to [0, `limit`]."""
    device = backbone.get_input_embeddings().weight.device

    def seconds(rows: int, width: int) -> float:
        ids = torch.randint(0, 100, (rows, width), device=device)
        times = []
        with torch.no_grad():
            for _ in range(repeats + 1):  # the first warms up
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                backbone(input_ids=ids, attention_mask=torch.ones_like(ids))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
        return sorted(times[1:])[len(times[1:]) // 2]

    small, large = seconds(1, 8), seconds(8, 64)
    per_token = (large - small) / (8 * 64 - 8)
    if per_token <= 0:  # the large forward was no dearer: padding is free here
        return limit
    return int(min(max((small - 8 * per_token) / per_token, 0), limit))


def length_chunks(lengths: list[int], max_rows: int, overhead: int) -> list[tuple[int, int]]:
    """Cut rows sorted by length into batches, as (start, end), of at most `max_rows` rows, at the least
    cost: each batch costs `overhead` + its rows x its longest row (what padding makes the backbone
    compute). The texts a window gathers are a random sample of lengths: padded to the longest as one
    batch, most of the work would be padding; cut where lengths jump, it is spent on real tokens."""
    best, cut = [0] + [float("inf")] * len(lengths), [0] * (len(lengths) + 1)
    for end in range(1, len(lengths) + 1):
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + overhead + (end - start) * lengths[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    chunks, end = [], len(lengths)
    while end > 0:
        chunks.append((cut[end], end))
        end = cut[end]
    return chunks[::-1]


class QueueFull(RuntimeError):
    """The batching queue holds `max_queue` requests already: come back later (503)."""


class _Answered:
    future: Future

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        try:  # a client that went away cancelled its future: nothing to answer
            self.future.set_exception(error) if error is not None else self.future.set_result(result)
        except InvalidStateError:
            pass


@dataclass(eq=False)
class Call(_Answered):
    """Model work that is not a batch (loading an adapter): run on the worker, alone, in queue order."""

    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as err:  # noqa: BLE001  the caller gets the error; the worker goes on
            return self.finish(error=err)
        self.finish(result)


@dataclass(eq=False)
class Job(_Answered):
    """One request: a predict request's encoded rows, or a generate request's padded prompts."""

    served: Served
    rows: list[dict[str, Any]]
    future: Future = field(default_factory=Future)
    outputs: list = field(default_factory=list)
    remaining: int = 0
    generate: dict[str, Any] | None = None  # the decoding settings of a generate request

    def __post_init__(self):
        self.outputs = [None] * len(self.rows)
        self.remaining = len(self.rows)

    @property
    def size(self) -> int:
        """Texts in the request (a generate request's rows are its prompts)."""
        return len(self.rows) if self.generate is None else self.rows[0]["input_ids"].shape[0]


class Batcher:
    """The bounded queue and the worker that turns it into mixed-adapter batches."""

    def __init__(self, registry: Registry, max_batch_size: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256,
                 metrics=None, forward_overhead_tokens: int = FORWARD_OVERHEAD_TOKENS):
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise UsageError("max_batch_size and max_queue must be >= 1 and max_wait_ms >= 0.")
        self.registry, self.metrics = registry, metrics
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.forward_overhead_tokens = forward_overhead_tokens
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.max_queue = max_queue
        self.closed = False
        self.taken = 0  # requests the worker has taken from the queue (tests synchronise on it)
        self.thread = threading.Thread(target=self._work, name="sktune-batcher", daemon=True)
        self.thread.start()

    # -- the request side ----------------------------------------------------------------------
    def submit(self, served: Served, rows: list[dict[str, Any]]) -> Future:
        """Queue encoded rows of one adapter; the future gives one (prediction, probabilities) per row."""
        if not rows:
            raise UsageError("Nothing to predict: give at least one text.")
        return self._put(Job(served, rows))

    def submit_generate(self, served: Served, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        **settings: Any) -> Future:
        """Queue left-padded prompts of a causal-lm adapter; the future gives each prompt's new token ids."""
        job = Job(served, [{"input_ids": input_ids, "attention_mask": attention_mask}], generate=settings)
        return self._put(job)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run `fn(*args, **kwargs)` on the worker thread, after what is queued before it; the future gives
        its result. For model work that is not a batch (`Registry.load`): see the module's docstring."""
        return self._put(Call(lambda: fn(*args, **kwargs)))

    def _put(self, job: Job | Call) -> Future:
        if self.closed:
            raise QueueFull("The server is shutting down.")
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            if self.metrics is not None:
                self.metrics.rejected.inc()
            raise QueueFull(f"{self.max_queue} requests are queued already; retry shortly.") from None
        return job.future

    def depth(self) -> int:
        return self.queue.qsize()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, run the queued ones, stop the worker."""
        if not self.closed:
            self.closed = True
            self.queue.put(_STOP)  # behind everything queued: the worker drains the queue first
        self.thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self.queue.get()
            if job is _STOP:
                return self._refuse_the_rest()
            self.taken += 1
            if isinstance(job, Call):
                self._busy(job.run)
                continue
            gathered, rows, stop, after = [job], job.size, False, None
            deadline = time.monotonic() + self.max_wait
            while rows < self.max_batch_size:
                try:
                    more = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                self.taken += 1
                if isinstance(more, Call):  # runs after the batch gathered before it
                    after = more
                    break
                gathered.append(more)
                rows += more.size
            self._busy(lambda: self._run_all(gathered))
            if after is not None:
                self._busy(after.run)
            if stop:
                return self._refuse_the_rest()

    def _busy(self, work) -> None:
        """Run `work`, counting its time as the worker's busy time."""
        started = time.perf_counter()
        work()
        if self.metrics is not None:
            self.metrics.worker_seconds.inc(time.perf_counter() - started)

    def _run_all(self, jobs: list[Job]) -> None:
        try:
            self._run(jobs)
        except Exception as err:  # noqa: BLE001  a bug of ours: answer every gathered request, keep serving
            for job in jobs:
                job.finish(error=err)

    def _refuse_the_rest(self) -> None:
        """Requests that slipped in after close() began: answered, not left waiting."""
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                job.finish(error=QueueFull("The server is shutting down."))

    def _run(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}  # generate requests with the same decoding settings decode together
        for job in (j for j in jobs if j.generate is not None):
            groups.setdefault(tuple(sorted(job.generate.items())), []).append(job)
        for group in groups.values():
            if self._guarded(group, lambda: self._generate(group)) and len(group) > 1:
                for job in group:  # find the culprit: each request on its own
                    self._guarded([job], lambda: self._generate([job]))
        pieces = [(job, i) for job in jobs if job.generate is None and not job.future.done() for i in range(job.size)]
        pieces.sort(key=lambda piece: len(piece[0].rows[piece[1]]["input_ids"]))
        lengths = [len(job.rows[i]["input_ids"]) for job, i in pieces]
        for start, end in length_chunks(lengths, self.max_batch_size, self.forward_overhead_tokens):
            chunk = pieces[start:end]
            owners = list(dict.fromkeys(job for job, _ in chunk))
            if self._guarded(owners, lambda: self._forward(chunk)) and len(owners) > 1:
                for job in owners:  # find the culprit: each request on its own
                    own = [piece for piece in chunk if piece[0] is job]
                    self._guarded([job], lambda: self._forward(own))

    def _guarded(self, jobs: list[Job], step) -> bool:
        """Run `step`; on an error, fail only if one request is involved, else report it (the caller retries)."""
        try:
            with self.registry.lock:
                step()
            return False
        except Exception as err:  # noqa: BLE001  nothing a request holds may stop the worker
            if len(jobs) == 1:
                jobs[0].finish(error=err)
            return True

    def _forward(self, chunk: list[tuple[Job, int]]) -> None:
        rows = [job.rows[i] for job, i in chunk]
        # every adapter's encoder has the server's tokenizer, so any of them pads the mixed batch; a sequence
        # task's row gets word ids that keep nothing, so that the token tasks' rows are padded alongside
        encoder = chunk[0][0].served.encoder
        batch = encoder.collate([{**row, "word_ids": row.get("word_ids", [-1] * len(row["input_ids"]))}
                                 for row in rows])
        multi = self.registry.multi
        device = multi.backbone.get_input_embeddings().weight.device
        input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        types = batch["token_type_ids"].to(device) if "token_type_ids" in batch else None
        logits = multi(input_ids, mask, [job.served.adapter for job, _ in chunk], token_type_ids=types)
        decoded = []  # all rows first: a chunk that fails half-way leaves no job half-counted
        for (job, _), row, word_ids, out in zip(chunk, rows, batch["word_ids"], logits):
            keep = word_ids >= 0 if "word_ids" in row else None
            decoded.append(task_of(job.served.config).decode(out.float().cpu(), keep))
        if self.metrics is not None:
            self.metrics.observe_batch(len(rows), len({id(job.served) for job, _ in chunk}), input_ids.numel())
        for (job, i), output in zip(chunk, decoded):
            job.outputs[i] = output
            job.remaining -= 1
            if job.remaining == 0:
                job.finish(job.outputs)

    def _generate(self, jobs: list[Job]) -> None:
        """The requests' prompts (for any causal-lm adapters) as one left-padded batch, decoded in slices of
        at most `max_batch_size` rows; each request gets its own rows' new token ids."""
        multi = self.registry.multi
        device = multi.backbone.get_input_embeddings().weight.device
        width = max(job.rows[0]["input_ids"].shape[1] for job in jobs)
        pad_id = jobs[0].generate.get("pad_token_id") or 0

        def left(t: torch.Tensor, fill: int) -> torch.Tensor:
            return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=fill)

        ids = torch.cat([left(job.rows[0]["input_ids"], pad_id) for job in jobs])
        mask = torch.cat([left(job.rows[0]["attention_mask"], 0) for job in jobs])
        adapters = [job.served.adapter for job in jobs for _ in range(job.size)]
        new_tokens = []
        for start in range(0, ids.shape[0], self.max_batch_size):
            rows = slice(start, start + self.max_batch_size)
            out = multi.generate(ids[rows].to(device), mask[rows].to(device), adapters[rows], **jobs[0].generate)
            new_tokens += [row.tolist() for row in out[:, width:].cpu()]
            if self.metrics is not None:
                self.metrics.observe_batch(out.shape[0], len({id(a) for a in adapters[rows]}),
                                          ids[rows].numel())
        for job in jobs:
            job.finish(new_tokens[:job.size])
            new_tokens = new_tokens[job.size:]
