"""Dynamic micro-batching: concurrent requests merged into one model call, the model run off the event loop.

A `MicroBatcher` owns one model. Each request (`await batcher.predict(texts, pairs)`) waits in a bounded
queue; one worker task takes the waiting requests, up to `max_batch_size` texts in all (waiting at most
`max_wait_s` for more to arrive while the batch is not full), runs the model once on their concatenation in a
thread, and hands each request back its own rows. Requests are never split: a request larger than
`max_batch_size` runs alone. `max_batch_size=1` turns batching off (one model call per request). If a batched
call fails, each of its requests runs again alone, so that only a request whose own input makes the model fail
gets the error, never the requests that happened to share its batch.

Example:

Two concurrent requests to an exported model (`artifact_dir`: a folder written by `export_tflite`):

>>> import asyncio
>>> from tunekit.deploy import load_artifact
>>> artifact = load_artifact(artifact_dir)
>>> batch_sizes = []
>>> async def two_requests():
...     batcher = MicroBatcher(artifact.predict, max_batch_size=32, max_wait_s=0.002,
...                            on_batch=lambda size, queue_depth: batch_sizes.append(size))
...     batcher.start()                                   # inside the running event loop
...     outputs = await asyncio.gather(batcher.predict(["A masterpiece."]), batcher.predict(["Dull.", "Fine."]))
...     await batcher.stop()
...     return outputs
>>> first, second = asyncio.run(two_requests())
>>> first["probabilities"].shape, second["probabilities"].shape    # each request gets its own rows
((1, 2), (2, 2))
>>> batch_sizes                                                    # of one model call
[3]
"""

import asyncio
import collections
import concurrent.futures
import logging
import time

import numpy as np

logger = logging.getLogger("tunekit.serving")


class QueueFullError(Exception):
    """The queue already holds `max_queue` texts: the caller should answer 503 and retry later."""


class PredictionTimeoutError(Exception):
    """A request waited and ran longer than its timeout."""


def check_settings(*, max_batch_size, max_wait_s, max_queue, timeout_s):
    """Raises a ValueError naming the first unusable batching setting."""
    for name, value in (("max_batch_size", max_batch_size), ("max_queue", max_queue)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    for name, value in (("max_wait_s", max_wait_s), ("timeout_s", timeout_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}.")
    if timeout_s == 0:
        raise ValueError("timeout_s must be > 0: every request would time out.")


class _Request:
    __slots__ = ("texts", "pairs", "future")

    def __init__(self, texts, pairs, future):
        self.texts, self.pairs, self.future = texts, pairs, future


class MicroBatcher:
    """Merges concurrent `predict` calls into batched calls of `predict_fn(texts, text_pairs)`.

    Args:
        predict_fn: `(texts, text_pairs or None) -> dict of numpy arrays` whose first dimension is the batch.
        max_batch_size: most texts per model call (1 = no batching).
        max_wait_s: how long a non-full batch waits for more requests once the model is free.
        max_queue: most texts waiting; beyond it `predict` raises `QueueFullError`.
        timeout_s: per-request limit on waiting plus running; beyond it `predict` raises `PredictionTimeoutError`.
        on_batch: optional `(batch_size, queue_depth)` callback after each model call, for metrics.
    """

    def __init__(self, predict_fn, *, max_batch_size=32, max_wait_s=0.002, max_queue=1024, timeout_s=30.0,
                 on_batch=None):
        if not callable(predict_fn):
            raise TypeError(f"predict_fn must be callable, got {type(predict_fn).__name__}.")
        check_settings(max_batch_size=max_batch_size, max_wait_s=max_wait_s, max_queue=max_queue, timeout_s=timeout_s)
        self.predict_fn = predict_fn
        self.max_batch_size, self.max_wait_s = max_batch_size, float(max_wait_s)
        self.max_queue, self.timeout_s = max_queue, float(timeout_s)
        self.on_batch = on_batch
        self._queue = collections.deque()
        self._filling = []  # requests taken from the queue for the next batch, not yet running
        self._queued_texts = 0
        self._wakeup = None
        self._worker = None
        # One thread per model: TensorFlow already spreads one call over all cores.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunekit-model")

    @property
    def queue_depth(self):
        """Texts waiting for the model, the batch being filled included (not the batch that is running)."""
        return self._queued_texts

    def start(self):
        """Starts the worker task; call from inside the running event loop."""
        if self._worker is None:
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="tunekit-batcher")

    async def stop(self):
        """Cancels the worker, fails what is still queued, and releases the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
        for request in [*self._filling, *self._queue]:
            if not request.future.done():
                request.future.set_exception(QueueFullError("the server is shutting down"))
        self._queue.clear()
        self._filling = []
        self._queued_texts = 0
        self._executor.shutdown(wait=True)

    async def predict(self, texts, pairs=None):
        """Outputs of the model for `texts` (and `pairs`), computed in a shared batch: dict of numpy arrays."""
        if self._worker is None:
            raise RuntimeError("MicroBatcher.start() must be called before predict().")
        if self._queued_texts + len(texts) > self.max_queue:
            raise QueueFullError(f"{self._queued_texts} texts are already waiting (limit {self.max_queue})")
        request = _Request(texts, pairs, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._queued_texts += len(texts)
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), self.timeout_s)
        except asyncio.TimeoutError:
            request.future.cancel()  # the worker skips it if it is still queued
            raise PredictionTimeoutError(f"no prediction within {self.timeout_s:g} s") from None

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = await self._collect()
                if batch:
                    await self._execute(loop, batch)

    async def _collect(self):
        """Takes queued requests up to `max_batch_size` texts, waiting up to `max_wait_s` to fill the batch."""
        batch, size = self._filling, 0
        deadline = time.perf_counter() + self.max_wait_s
        while True:
            while self._queue:
                request = self._queue[0]
                if request.future.done():  # timed out or cancelled while queued
                    self._queue.popleft()
                    self._queued_texts -= len(request.texts)
                    continue
                if batch and size + len(request.texts) > self.max_batch_size:
                    return batch
                self._queue.popleft()  # still counted in _queued_texts until the batch runs
                batch.append(request)
                size += len(request.texts)
            remaining = deadline - time.perf_counter()
            if not batch or size >= self.max_batch_size or remaining <= 0:
                return batch
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def _execute(self, loop, batch):
        self._filling = []
        self._queued_texts -= sum(len(request.texts) for request in batch)
        await self._call(loop, batch)

    async def _call(self, loop, batch):
        """One model call for `batch`; if it fails, each request again alone (only failing requests get an error)."""
        batch = [request for request in batch if not request.future.done()]  # timed out meanwhile
        if not batch:
            return
        texts = [text for request in batch for text in request.texts]
        pairs = None
        if batch[0].pairs is not None:
            pairs = [pair for request in batch for pair in request.pairs]
        try:
            outputs = await loop.run_in_executor(self._executor, self.predict_fn, texts, pairs)
        except Exception as error:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(error)
                return
            # The type only: the message may quote request texts (a request that fails alone logs it, if allowed).
            logger.warning("a batch of %d requests failed (%s): running each alone", len(batch), type(error).__name__)
            for request in batch:
                await self._call(loop, [request])
            return
        if self.on_batch is not None:
            self.on_batch(len(texts), self._queued_texts)
        start = 0
        for request in batch:
            stop = start + len(request.texts)
            if not request.future.done():
                request.future.set_result(_rows(outputs, start, stop))
            start = stop


def _rows(outputs, start, stop):
    """Rows `start:stop` of every output; per-word outputs trimmed to the longest sentence of those rows."""
    rows = {name: np.asarray(value)[start:stop] for name, value in outputs.items()}
    if "num_words" in rows:
        width = int(rows["num_words"].max(initial=0))
        for name, value in rows.items():
            if name != "num_words" and value.ndim >= 2:
                rows[name] = value[:, :width]
    return rows
