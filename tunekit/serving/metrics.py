"""Prometheus metrics of one server: traffic, latency, batching, queue, and the model's inputs and outputs.

Each app gets its own `CollectorRegistry`, so several apps (or tests) can live in one process. Routes are
recorded by their template (`/v1/models/{name}:predict`), never by raw path, to keep the label set bounded;
predicted labels and input lengths per model are the signals to watch for drift. No label ever holds request text.

With several worker processes (`tunekit serve --workers N`), `PROMETHEUS_MULTIPROC_DIR` is set before the workers
start: prometheus-client then keeps each process's values in files there, and `exposition` sums counters and
histograms over all processes (those of workers that died included), gauges over the live ones
(`tunekit_model_ready`: the minimum, so a worker still loading shows 0).

Example:

>>> metrics = ServingMetrics()
>>> metrics.observe_request("/v2/health/ready", "GET", 200, 0.001)
>>> body, content_type = metrics.exposition()
>>> [line for line in body.decode().splitlines() if line.startswith("tunekit_requests_total")]
['tunekit_requests_total{method="GET",route="/v2/health/ready",status="200"} 1.0']
"""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ServingMetrics:
    """The server's Prometheus collectors, registered in a private registry (or aggregated over processes)."""

    def __init__(self):
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV)
        self.pid = str(os.getpid())
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("tunekit_requests", "HTTP requests by route template, method and status code.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("tunekit_request_duration_seconds", "HTTP request latency by route template.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("tunekit_batch_size", "Texts per model call.", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("tunekit_queue_depth", "Texts waiting for the model.", ["model"],
                                 registry=self.registry, multiprocess_mode="livesum")
        self.queue_capacity = Gauge("tunekit_queue_capacity", "Most texts that may wait for the model before 503 "
                                    "(--max-queue).", ["model"], registry=self.registry, multiprocess_mode="livemax")
        self.predicted = Counter("tunekit_predicted_labels", "Predicted labels per model (drift signal).",
                                 ["model", "label"], registry=self.registry)
        self.input_length = Histogram("tunekit_input_length_chars", "Characters per input text (drift signal).",
                                      ["model"], buckets=LENGTH_BUCKETS, registry=self.registry)
        self.ready = Gauge("tunekit_model_ready", "1 once the model version is loaded and warmed up.",
                           ["model", "version"], registry=self.registry, multiprocess_mode="livemin")
        self.rate_limited = Counter("tunekit_rate_limited_requests",
                                    "Requests refused with 429 by the per-key rate limit, by API key position "
                                    "(1 = the first key; 'all' without keys).", ["api_key"], registry=self.registry)
        self.worker_requests = Counter("tunekit_worker_requests", "HTTP requests answered by each worker process, "
                                       "by its PID.", ["worker_pid"], registry=self.registry)

    def observe_request(self, route, method, status, seconds):
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        self.worker_requests.labels(self.pid).inc()

    def forget_version(self, model, version):
        """Drops the readiness series of an unloaded model version. prometheus-client cannot remove a series in
        multiprocess mode: with several workers it keeps its last value until the workers restart."""
        if self.multiprocess_dir is None:
            self.ready.remove(model, version)

    def observe_batch(self, model, size, queue_depth):
        self.batch_size.labels(model).observe(size)
        self.queue_depth.labels(model).set(queue_depth)

    def observe_inputs(self, model, texts):
        histogram = self.input_length.labels(model)
        for text in texts:
            histogram.observe(len(text))

    def observe_labels(self, model, labels):
        for label in labels:
            self.predicted.labels(model, label).inc()

    def exposition(self):
        """(body bytes, content type) of the Prometheus text format: this registry's, or with several worker
        processes the sum over all of them (first forgetting the gauges of workers that have died)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        _forget_dead_processes(self.multiprocess_dir)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_dead_processes(directory):
    """Removes the live-gauge files of processes that no longer exist (a worker killed and replaced), as
    prometheus-client's `mark_process_dead` does when a process manager calls it."""
    import glob
    import os

    from prometheus_client.multiprocess import mark_process_dead

    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = int(os.path.basename(path)[:-3].rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, under another user
