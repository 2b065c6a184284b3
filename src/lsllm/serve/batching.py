"""Micro-batching: requests that arrive together share one model call.

A forward pass over 32 short texts costs little more than one over a single text (the weights
are read once, the matmuls get wider), so answering concurrent requests one at a time wastes
most of the hardware. One worker coroutine takes the oldest waiting request, keeps collecting
until `max_batch_size` inputs are gathered or `max_wait_ms` has passed, runs ONE prediction call
for all of them in a dedicated thread (the event loop keeps accepting requests meanwhile) and
resolves every request's future with its own slice of the results. While the model runs, new
requests queue up, so under load the next batch is full without waiting at all; an idle server
adds at most `max_wait_ms` to a lone request.

A request is never split: one larger than `max_batch_size` runs as a batch of its own (the
classifier cuts it into token-budget batches itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Predict = Callable[[str, list], list[dict]]
"""predict(kind, inputs) -> one record per input; kind is "texts" or "tokens"."""


@dataclass
class _Pending:
    kind: str
    inputs: list
    future: asyncio.Future


class MicroBatcher:
    """Collects concurrent requests into bounded batches for one `predict` call each.

    Args:
        predict: `predict(kind, inputs) -> records`, called from one worker thread, never
            concurrently with itself.
        max_batch_size: most inputs per model call (a single larger request still runs alone).
        max_wait_ms: longest time the oldest request waits for company before its batch runs.

    Example:
        batcher = MicroBatcher(lambda kind, xs: classifier.predict_texts(xs), 32, 5.0)
        records = await batcher.submit("texts", ["a great movie"])
    """

    def __init__(self, predict: Predict, max_batch_size: int = 32, max_wait_ms: float = 5.0) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._carry: _Pending | None = None
        self._running: list[_Pending] = []

    async def submit(self, kind: str, inputs: Sequence) -> list[dict]:
        """Queue one request and wait for its records (exceptions of its own inputs re-raised)."""
        queue = self._ensure_worker()
        future = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(kind, list(inputs), future))
        return await future

    def _ensure_worker(self) -> asyncio.Queue[_Pending]:
        # The worker lives on the loop that serves requests. Started lazily so the app works with
        # or without a lifespan (ASGI test transports), and restarted if a client runs each
        # request on a fresh loop.
        loop = asyncio.get_running_loop()
        if self._executor is None:
            # One thread: model calls are serialized (torch already uses every core inside one call).
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lsllm-predict")
        if self._worker is None or self._loop is not loop or self._worker.done():
            self._loop, self._queue, self._carry = loop, asyncio.Queue(), None
            self._worker = loop.create_task(self._run(), name="lsllm-microbatcher")
        assert self._queue is not None
        return self._queue

    async def close(self) -> None:
        """Stop the worker (a later `submit` starts a new one); unanswered requests get a RuntimeError."""
        worker, queue = self._worker, self._queue
        self._worker = None
        if worker is not None and not worker.done() and worker.get_loop() is asyncio.get_running_loop():
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
        pending = self._running + ([self._carry] if self._carry else [])
        self._running = []
        while queue is not None and not queue.empty():
            pending.append(queue.get_nowait())
        for item in pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._carry = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            results = await loop.run_in_executor(self._executor, self._predict_batch, batch)
            self._running = []
            for item, result in zip(batch, results, strict=True):
                if item.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    async def _collect(self) -> list[_Pending]:
        """The oldest request plus whatever joins it within the wait and the size bound."""
        assert self._queue is not None
        first, self._carry = self._carry or await self._queue.get(), None
        # Filled in place, so `close` can answer whatever was taken off the queue if it cancels us here.
        self._running = batch = [first]
        size = len(first.inputs)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while size < self.max_batch_size:
            try:
                if self._queue.empty():
                    timeout = deadline - asyncio.get_running_loop().time()
                    if timeout <= 0:
                        break
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                else:
                    item = self._queue.get_nowait()
            except asyncio.TimeoutError:
                break
            if size + len(item.inputs) > self.max_batch_size:
                self._carry = item  # first in the next batch: arrival order is kept
                break
            batch.append(item)
            size += len(item.inputs)
        return batch

    def _predict_batch(self, batch: list[_Pending]) -> list[Any]:
        """Runs in the worker thread: one call per kind, results sliced back per request."""
        results: list[Any] = [None] * len(batch)
        for kind in dict.fromkeys(item.kind for item in batch):
            members = [i for i, item in enumerate(batch) if item.kind == kind]
            inputs = [x for i in members for x in batch[i].inputs]
            logger.debug("model call: %d %s from %d requests", len(inputs), kind, len(members))
            try:
                records = self.predict(kind, inputs)
            except Exception as err:  # handed to the request(s) it belongs to
                if len(members) == 1:
                    results[members[0]] = err
                    continue
                # One bad request must not fail the others that shared its batch: retry alone.
                for i in members:
                    try:
                        results[i] = self.predict(kind, batch[i].inputs)
                    except Exception as own:
                        results[i] = own
                continue
            start = 0
            for i in members:
                n = len(batch[i].inputs)
                results[i] = records[start : start + n]
                start += n
        return results
