"""MicroBatcher on its own: bounded batches, bounded waits, per-request slices and errors.

The predict function here is a plain recorder (inputs -> upper-cased records), so each test
sees exactly which inputs shared a model call.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lsllm.serve.batching import MicroBatcher


class Recorder:
    """A predict function that records every call; `slow` seconds per call, fails on "bad"."""

    def __init__(self, slow: float = 0.0) -> None:
        self.calls: list[tuple[str, list]] = []
        self.threads: set[str] = set()
        self.slow = slow

    def __call__(self, kind: str, inputs: list) -> list[dict]:
        self.calls.append((kind, list(inputs)))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.slow)
        if "bad" in inputs:
            raise ValueError("bad input")
        return [{"kind": kind, "out": str(x).upper()} for x in inputs]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_one_call_and_get_their_own_slices():
    predict = Recorder()

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=32, max_wait_ms=50)
        requests = [[f"a{i}", f"b{i}"] for i in range(10)]
        results = await asyncio.gather(*(batcher.submit("texts", r) for r in requests))
        await batcher.close()
        return requests, results

    requests, results = run(main())
    assert len(predict.calls) == 1 and len(predict.calls[0][1]) == 20
    for request, result in zip(requests, results, strict=True):
        assert [r["out"] for r in result] == [x.upper() for x in request]
    assert all(name.startswith("lsllm-predict") for name in predict.threads)  # off the event loop


def test_batches_are_bounded_and_requests_never_split():
    predict = Recorder(slow=0.01)

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=4, max_wait_ms=20)
        sizes = [1, 3, 2, 2, 1, 6, 1]
        results = await asyncio.gather(*(batcher.submit("texts", [f"{n}-{k}" for k in range(n)]) for n in sizes))
        await batcher.close()
        return sizes, results

    sizes, results = run(main())
    assert [len(r) for r in results] == sizes
    assert sum(len(inputs) for _, inputs in predict.calls) == sum(sizes)
    for _, inputs in predict.calls:
        # at most 4 inputs, except the 6-input request, which runs alone and whole
        assert len(inputs) <= 4 or inputs == [f"6-{k}" for k in range(6)]
    assert len(predict.calls) < len(sizes)
    order = [x for _, inputs in predict.calls for x in inputs]
    assert order == [f"{n}-{k}" for n in sizes for k in range(n)]  # arrival order is kept


def test_a_lone_request_waits_at_most_max_wait():
    predict = Recorder()

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=32, max_wait_ms=30)
        await batcher.submit("texts", ["warm"])  # starts the worker and its thread
        start = time.perf_counter()
        await batcher.submit("texts", ["x"])
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    assert 0.025 <= run(main()) < 1.0


def test_a_bad_request_fails_alone_and_the_batch_still_answers_the_rest():
    predict = Recorder()

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=32, max_wait_ms=50)
        results = await asyncio.gather(batcher.submit("texts", ["ok1"]), batcher.submit("texts", ["bad"]),
                                       batcher.submit("texts", ["ok2"]), return_exceptions=True)
        await batcher.close()
        return results

    good1, bad, good2 = run(main())
    assert isinstance(bad, ValueError)
    assert good1[0]["out"] == "OK1" and good2[0]["out"] == "OK2"


def test_texts_and_tokens_in_one_batch_make_one_call_each():
    predict = Recorder()

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=32, max_wait_ms=50)
        results = await asyncio.gather(batcher.submit("texts", ["t1"]), batcher.submit("tokens", [["w"]]),
                                       batcher.submit("texts", ["t2"]))
        await batcher.close()
        return results

    t1, w, t2 = run(main())
    assert sorted(kind for kind, _ in predict.calls) == ["texts", "tokens"]
    assert (t1[0]["kind"], w[0]["kind"], t2[0]["kind"]) == ("texts", "tokens", "texts")


def test_close_fails_unanswered_requests_and_a_later_submit_restarts():
    predict = Recorder(slow=0.2)

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=1, max_wait_ms=0)
        first = asyncio.ensure_future(batcher.submit("texts", ["running"]))
        queued = asyncio.ensure_future(batcher.submit("texts", ["queued"]))
        await asyncio.sleep(0.05)  # the first is in the model, the second waits in the queue
        await batcher.close()
        for unanswered in (first, queued):
            with pytest.raises(RuntimeError, match="shutting down"):
                await unanswered
        return await batcher.submit("texts", ["again"])

    assert run(main())[0]["out"] == "AGAIN"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(Recorder(), max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(Recorder(), max_wait_ms=-1)
