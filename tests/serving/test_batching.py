"""MicroBatcher on its own: merging, each caller's own rows, limits, timeouts and model errors."""

import asyncio
import threading
import time

import numpy as np
import pytest

from tunekit.serving.batching import MicroBatcher, PredictionTimeoutError, QueueFullError


class Doubler:
    """A predict function that records its batches: text "k" -> value 2k, per-word output of width k."""

    def __init__(self, delay=0.0):
        self.batches, self.delay, self.threads = [], delay, set()

    def __call__(self, texts, pairs):
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        counts = np.array([int(t) for t in texts])
        width = counts.max()
        return {"value": counts * 2, "num_words": counts,
                "tags": np.array([[f"w{i}" if i < c else "" for i in range(width)] for c in counts])}


def run(coroutine_fn, batcher):
    async def main():
        batcher.start()
        try:
            return await coroutine_fn()
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_model_calls_and_get_their_own_rows():
    model = Doubler(delay=0.01)
    batcher = MicroBatcher(model, max_batch_size=6, max_wait_s=0.02)
    requests = [[str(1 + (i + j) % 5) for j in range(1 + i % 3)] for i in range(20)]

    async def main():
        return await asyncio.gather(*(batcher.predict(texts) for texts in requests))

    answers = run(main, batcher)
    for texts, answer in zip(requests, answers):
        counts = [int(t) for t in texts]
        assert answer["value"].tolist() == [2 * c for c in counts]
        assert answer["tags"].shape == (len(texts), max(counts))  # trimmed to its own longest text
    assert all(len(batch) <= 6 for batch in model.batches)
    assert len(model.batches) < len(requests) / 2
    assert sum(len(b) for b in model.batches) == sum(len(r) for r in requests)
    assert model.threads and not any(name == threading.main_thread().name for name in model.threads)


def test_batch_size_one_runs_each_request_alone():
    model = Doubler()
    batcher = MicroBatcher(model, max_batch_size=1, max_wait_s=0.05)

    async def main():
        return await asyncio.gather(batcher.predict(["1"]), batcher.predict(["2", "3"]), batcher.predict(["4"]))

    run(main, batcher)
    assert sorted(model.batches) == [["1"], ["2", "3"], ["4"]]  # a larger request is never split


def test_full_queue_and_timeout_and_model_errors_reach_the_caller():
    model = Doubler(delay=0.5)
    batcher = MicroBatcher(model, max_batch_size=1, max_wait_s=0, max_queue=2, timeout_s=0.2)

    async def main():
        first = asyncio.ensure_future(batcher.predict(["1"]))
        await asyncio.sleep(0.05)  # the first runs (0.5 s); the next two wait
        waiting = [asyncio.ensure_future(batcher.predict([str(k)])) for k in (2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):
            await batcher.predict(["4"])
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
        return results

    results = run(main, batcher)
    assert all(isinstance(result, PredictionTimeoutError) for result in results)
    assert model.batches == [["1"]]  # requests that timed out while queued are dropped, not run

    def failing(texts, pairs):
        raise RuntimeError("model exploded")

    broken = MicroBatcher(failing, max_batch_size=4, max_wait_s=0)

    async def call():
        return await broken.predict(["1"])

    with pytest.raises(RuntimeError, match="model exploded"):
        run(call, broken)


def test_a_request_that_fails_the_model_fails_alone_not_its_batch(exports):
    """The real exported model, 7 good requests and one whose text TensorFlow cannot encode, in one batch: the
    batch fails, each request runs again alone, and only the bad one gets the error."""
    from sample_texts import sentiment_texts

    from tunekit.deploy import load_artifact

    artifact = load_artifact(exports["v1"])
    calls = []

    def predict(texts, pairs):
        calls.append(len(texts))
        return artifact.predict(texts, pairs)

    texts, _ = sentiment_texts(7, seed=4)
    requests = [[text] for text in texts[:3]] + [["bad \ud800"]] + [[text] for text in texts[3:]]
    batcher = MicroBatcher(predict, max_batch_size=8, max_wait_s=0.5)

    async def main():
        return await asyncio.gather(*(batcher.predict(texts) for texts in requests), return_exceptions=True)

    results = run(main, batcher)
    assert calls == [8] + [1] * 8  # the failed batch, then each request alone
    bad = results.pop(3)
    assert isinstance(bad, Exception) and "surrogate" in str(bad)
    expected = artifact.predict(texts)["probabilities"]
    for i, result in enumerate(results):
        assert np.abs(result["probabilities"][0] - expected[i]).max() < 1e-5


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(Doubler(), max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(Doubler(), max_wait_s=-1)
    with pytest.raises(TypeError, match="callable"):
        MicroBatcher("model")
