"""Prometheus metrics of one server: traffic, latency, batching, queue, and the model's inputs and outputs.

Each app gets its own `CollectorRegistry`, so several apps (or tests) can live in one process. Routes are
recorded by their template (`/v1/models/{name}:predict`), never by raw path, to keep the label set bounded;
predicted labels and input lengths per model are the signals to watch for drift.

Example:

>>> metrics = ServingMetrics()                                   # doctest: +SKIP
>>> metrics.observe_request("/v2/health/ready", "GET", 200, 0.001)   # doctest: +SKIP
>>> body, content_type = metrics.exposition()                    # doctest: +SKIP
"""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LENGTH_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class ServingMetrics:
    """The server's Prometheus collectors, registered in a private registry."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("tunekit_requests", "HTTP requests by route template, method and status code.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("tunekit_request_duration_seconds", "HTTP request latency by route template.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("tunekit_batch_size", "Texts per model call.", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("tunekit_queue_depth", "Texts waiting for the model.", ["model"],
                                 registry=self.registry)
        self.predicted = Counter("tunekit_predicted_labels", "Predicted labels per model (drift signal).",
                                 ["model", "label"], registry=self.registry)
        self.input_length = Histogram("tunekit_input_length_chars", "Characters per input text (drift signal).",
                                      ["model"], buckets=LENGTH_BUCKETS, registry=self.registry)
        self.ready = Gauge("tunekit_model_ready", "1 once the model version is loaded and warmed up.",
                           ["model", "version"], registry=self.registry)

    def observe_request(self, route, method, status, seconds):
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

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
        """(body bytes, content type) of the Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
