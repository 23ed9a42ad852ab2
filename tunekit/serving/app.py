"""`create_app`: the ASGI app that serves exported models over TF Serving REST and KServe v2.

Routes (`{name}` a served model; each model route also exists as `.../versions/{version}...`):

- open: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{name}/ready`, `GET /metrics`
- authenticated (`Authorization: Bearer <key>`): `GET /v1/models/{name}`, `GET /v1/models/{name}/metadata`,
  `POST /v1/models/{name}:predict`, `GET /v1/models/{name}/labels`, `GET /v2`, `GET /v2/models/{name}`,
  `POST /v2/models/{name}/infer`

The app loads and warms up its models in the background once it starts: it is live at once and ready when every
model is. Clients get JSON errors (`{"error": ...}`), never a stack trace. A request body must arrive within
`body_timeout_s` (else 408) and is measured before it is parsed (see `protocols.decode_json`); a client that
disconnects before its body arrived is recorded with status 499 (nginx's "client closed request"), not as an error.
With `poll_seconds`, models given as folders of numbered versions are watched and new versions switched in
without a restart (`tunekit.serving.versions`). With a `RateLimiter`, each API key gets a token bucket: a key over
its rate gets 429 with `Retry-After`. Request texts never reach the logs unless `log_texts=True`, and then masked
(see `tunekit.serving.masking`).

Example (embedded in another ASGI app, or run by uvicorn; `artifact_dir` is an exported model's folder, e.g.
"exports/imdb"), here called in-process by Starlette's test client:

>>> import time
>>> from starlette.testclient import TestClient
>>> from tunekit.serving import create_app
>>> app = create_app({"imdb": artifact_dir}, api_keys=["0123456789abcdef0123"])
>>> with TestClient(app) as client:
...     for _ in range(200):                   # the models load in the background: wait until ready
...         if client.get("/v2/health/ready").status_code == 200:
...             break
...         time.sleep(0.05)
...     response = client.post("/v1/models/imdb:predict", json={"instances": ["A masterpiece."]},
...                            headers={"Authorization": "Bearer 0123456789abcdef0123"})
>>> response.status_code, sorted(response.json()["predictions"][0])
(200, ['class_id', 'label', 'probabilities'])
>>> uvicorn.run(app, port=8500)     # a real server: runs until stopped    # doctest: +SKIP
"""

import asyncio
import contextlib
import functools
import logging
import math
import os

from tunekit.serving.auth import KeyChecker
from tunekit.serving.batching import PredictionTimeoutError, QueueFullError, check_settings
from tunekit.serving.masking import describe_failure, mask_text
from tunekit.serving.models import ServedModel, check_name, default_version, is_version_base, resolve_versions
from tunekit.serving.protocols import (
    Limits,
    RequestError,
    decode_json,
    format_kserve,
    format_tfserving,
    parse_kserve,
    parse_tfserving,
)

logger = logging.getLogger("tunekit.serving")

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_WAIT_MS = 2.0
DEFAULT_MAX_QUEUE = 1024
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_BODY_TIMEOUT_S = 30.0
RETRY_AFTER_S = 1
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before its request was read
DEFAULTS = {"max_batch_size": DEFAULT_MAX_BATCH_SIZE, "max_wait_ms": DEFAULT_MAX_WAIT_MS,
            "max_queue": DEFAULT_MAX_QUEUE, "timeout_s": DEFAULT_TIMEOUT_S, "max_texts": Limits.max_texts,
            "max_text_bytes": Limits.max_text_bytes, "body_timeout_s": DEFAULT_BODY_TIMEOUT_S}
_TF_DTYPES = {"FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "FP16": "DT_HALF", "INT32": "DT_INT32", "INT64": "DT_INT64",
              "INT16": "DT_INT16", "INT8": "DT_INT8", "UINT8": "DT_UINT8", "BOOL": "DT_BOOL", "BYTES": "DT_STRING"}


def create_app(models, *, api_keys=(), allow_unauthenticated=False, limits=None,
               max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_wait_ms=DEFAULT_MAX_WAIT_MS, max_queue=DEFAULT_MAX_QUEUE,
               timeout_s=DEFAULT_TIMEOUT_S, body_timeout_s=DEFAULT_BODY_TIMEOUT_S, on_load_error=None,
               rate_limiter=None, log_texts=False, load_before_serving=False, poll_seconds=None):
    """The serving ASGI app.

    Args:
        models: `{name: source}`; a source is an export directory, a base directory of numbered versions, a
            `{version: directory}` dict, or an artifact loaded by `tunekit.deploy.load_artifact`.
        api_keys: accepted bearer keys (see `tunekit.serving.load_api_keys`). Without keys the app refuses to
            be built unless `allow_unauthenticated=True`.
        limits: `Limits(max_texts, max_text_bytes)` per request.
        max_batch_size: most texts per model call (micro-batching); 1 turns batching off.
        max_wait_ms: how long a batch that is not full waits for more requests once the model is free.
        max_queue: most texts waiting per model version before requests get 503 + `Retry-After`.
        timeout_s: per-request limit (queueing + model) before a 504.
        body_timeout_s: how long a request body may take to arrive (counted from when the app starts reading it)
            before a 408, after which the connection is closed.
        on_load_error: called with the exception if a model fails to load (the app then reports not live); also
            settable later as `app.state.serving.on_load_error`.
        rate_limiter: a `tunekit.serving.ratelimit.RateLimiter` with one bucket per API key (one bucket for all
            clients without keys), or None for no rate limit. Over its limit, a key's requests get 429.
        log_texts: also write the request texts to the access log, and exception messages of failed requests to
            the error log, both masked by `tunekit.serving.masking.mask_text` (by default no text is logged).
        load_before_serving: load and warm up the models before the app starts (the server accepts no connection
            until then), rather than in the background while answering health checks; a model that fails to
            load then fails the start. Used by worker processes, so that a worker that is (re)starting leaves
            the connections to those that are ready.
        poll_seconds: watch the models given as folders of numbered versions every this many seconds, loading a
            new complete version and making it the default (see `tunekit.serving.versions`); None or 0: versions
            are read at start only.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from tunekit.serving.accesslog import AccessLogMiddleware
    from tunekit.serving.metrics import ServingMetrics
    from tunekit.serving.versions import VersionWatcher

    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {name: export directory or loaded artifact}.")
    api_keys = tuple(api_keys or ())
    if not api_keys and not allow_unauthenticated:
        raise ValueError("No API keys: set TUNEKIT_API_KEYS (comma-separated) or pass a key file, or pass "
                         "allow_unauthenticated=True (--allow-unauthenticated) to serve without authentication.")
    limits = Limits() if limits is None else limits
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a tunekit.serving.Limits, got {type(limits).__name__}.")
    check_settings(max_batch_size=max_batch_size, max_wait_s=max_wait_ms / 1000.0, max_queue=max_queue,
                   timeout_s=timeout_s)
    if isinstance(body_timeout_s, bool) or not isinstance(body_timeout_s, (int, float)) or not body_timeout_s > 0:
        raise ValueError(f"body_timeout_s must be a number of seconds > 0, got {body_timeout_s!r}.")
    if max_queue < limits.max_texts:
        raise ValueError(f"max_queue ({max_queue}) must be at least the texts allowed per request "
                         f"({limits.max_texts}), or a full-size request could never be queued.")
    if poll_seconds is not None and (isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float))
                                     or not poll_seconds >= 0):
        raise ValueError(f"poll_seconds must be a number of seconds >= 0 (0: off), got {poll_seconds!r}.")
    if rate_limiter is not None and rate_limiter.keys < max(1, len(api_keys)):
        raise ValueError(f"rate_limiter has {rate_limiter.keys} buckets for {len(api_keys)} API keys: create it "
                         "with keys=len(api_keys).")
    batching = {"max_batch_size": max_batch_size, "max_wait_s": max_wait_ms / 1000.0, "max_queue": max_queue,
                "timeout_s": timeout_s}
    state = _State(models, batching, KeyChecker(api_keys) if api_keys else None, limits, ServingMetrics(),
                   body_timeout_s)
    state.rate_limiter, state.log_texts, state.on_load_error = rate_limiter, bool(log_texts), on_load_error
    for served in state.all_versions():  # known from the start: alerts see a model that never gets ready
        state.metrics.ready.labels(served.name, served.version).set(0)
        state.metrics.queue_capacity.labels(served.name).set(max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if load_before_serving:
            await state.load()
            if state.failed is not None:
                raise RuntimeError(f"a model failed to load: {state.failed}")
        loop = asyncio.get_running_loop()
        loader = loop.create_task(state.load())
        watcher = None
        if poll_seconds and state.watched:
            watcher = loop.create_task(VersionWatcher(state, poll_seconds).run(after=loader))
        try:
            yield
        finally:
            loader.cancel()
            if watcher is not None:
                watcher.cancel()
            for served in state.every_version():
                if served.batcher is not None:
                    await served.batcher.stop()

    h = _Handlers(state)
    routes = [
        Route("/v2/health/live", h.live, methods=["GET"]),
        Route("/v2/health/ready", h.ready, methods=["GET"]),
        Route("/metrics", h.metrics, methods=["GET"]),
        Route("/v2", h.server_metadata, methods=["GET"]),
    ]
    for prefix in ("", "/versions/{version}"):
        routes += [
            Route(f"/v1/models/{{name}}{prefix}", h.tfs_status, methods=["GET"]),
            Route(f"/v1/models/{{name}}{prefix}/metadata", h.tfs_metadata, methods=["GET"]),
            Route(f"/v1/models/{{name}}{prefix}/labels", h.labels, methods=["GET"]),
            Route(f"/v1/models/{{name}}{prefix}:predict", h.tfs_predict, methods=["POST"]),
            Route(f"/v2/models/{{name}}{prefix}", h.kserve_metadata, methods=["GET"]),
            Route(f"/v2/models/{{name}}{prefix}/ready", h.model_ready, methods=["GET"]),
            Route(f"/v2/models/{{name}}{prefix}/infer", h.kserve_infer, methods=["POST"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(AccessLogMiddleware, metrics=state.metrics)],
                    exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: _internal_error})
    app.state.serving = state
    return app


class _State:
    """Everything the handlers share: models by name and version, auth, limits, metrics, readiness.

    `models` holds the versions that take requests (loading at start, or available); `pending` the versions being
    loaded while serving, `retired` those unloading or unloaded (see `tunekit.serving.versions`).
    """

    def __init__(self, sources, batching, checker, limits, metrics, body_timeout_s):
        self.models, self.defaults, self.pending, self.retired = {}, {}, {}, {}
        self.batching = batching
        self.watched = {name: os.fspath(source) for name, source in sources.items() if is_version_base(source)}
        for name, source in sources.items():
            check_name(name)
            versions = resolve_versions(source)
            self.models[name] = {version: ServedModel(name, version, value, batching)
                                 for version, value in versions.items()}
            self.defaults[name] = default_version(versions)
        self.checker, self.limits, self.metrics = checker, limits, metrics
        self.body_timeout_s = body_timeout_s
        self.failed = None

    def all_versions(self):
        """The versions that take requests."""
        return [served for versions in self.models.values() for served in versions.values()]

    def every_version(self):
        """The versions that take requests, those loading while serving, and the retired ones."""
        return [*self.all_versions(), *(served for group in (self.pending, self.retired)
                                        for versions in group.values() for served in versions.values())]

    @property
    def ready(self):
        return self.failed is None and all(served.ready for served in self.all_versions())

    async def load(self):
        """Loads and warms up every model version not yet loaded, off the event loop, one after another."""
        loop = asyncio.get_running_loop()
        for served in self.all_versions():
            if served.ready:
                continue
            try:
                await loop.run_in_executor(None, served.load)
            except Exception as error:
                self.failed = error
                logger.error("model %s version %s failed to load: %s", served.name, served.version, error,
                             exc_info=True)
                if self.on_load_error is not None:
                    self.on_load_error(error)
                return
            served.start(functools.partial(self.metrics.observe_batch, served.name))
            self.metrics.ready.labels(served.name, served.version).set(1)

    def lookup(self, request):
        """The `ServedModel` a request names (404 if unknown), whether or not it is ready."""
        name = request.path_params["name"]
        versions = self.models.get(name)
        if versions is None:
            raise RequestError(404, f"Model {name!r} is not served here; served models: {sorted(self.models)}.")
        version = request.path_params.get("version", self.defaults[name])
        if version not in versions:
            if version in self.pending.get(name, {}):
                raise RequestError(503, f"Model {name!r} version {version} is still loading.",
                                   {"Retry-After": str(RETRY_AFTER_S)})
            raise RequestError(404, f"Model {name!r} has no version {version!r}; versions: {list(versions)}.")
        return versions[version]

    def lookup_ready(self, request):
        served = self.lookup(request)
        if not served.ready:
            raise RequestError(503, f"Model {served.name!r} version {served.version} is still loading.",
                               {"Retry-After": str(RETRY_AFTER_S)})
        return served

    def authenticate(self, request):
        """Checks the API key (401), then takes a token from the key's rate-limit bucket (429)."""
        key = None
        if self.checker is not None:
            error, key = self.checker.identify(request.headers.get("authorization"))
            if error is not None:
                challenge = 'Bearer realm="tunekit"' + (', error="invalid_token"' if error == "invalid_token" else "")
                message = ("Invalid API key." if error == "invalid_token"
                           else "Missing or malformed Authorization header: send 'Authorization: Bearer <key>'.")
                raise RequestError(401, message, {"WWW-Authenticate": challenge})
        if self.rate_limiter is not None:
            wait = self.rate_limiter.acquire(key or 0)
            if wait > 0:
                self.metrics.rate_limited.labels("all" if key is None else str(key + 1)).inc()
                retry_after = max(1, math.ceil(wait))
                raise RequestError(429, f"Too many requests for this API key: the limit is "
                                        f"{self.rate_limiter.rate:g} per second, {self.rate_limiter.burst} at once; "
                                        f"retry in {retry_after} s.", {"Retry-After": str(retry_after)})


def _json(content, status=200, headers=None):
    from starlette.responses import JSONResponse

    return JSONResponse(content, status_code=status, headers=headers)


def _error(status, message, headers=None):
    return _json({"error": message}, status, headers)


async def _not_found(request, exc):
    return _error(404, f"No route {request.method} {request.url.path}.")


async def _method_not_allowed(request, exc):
    return _error(405, f"Method {request.method} is not allowed on {request.url.path}.")


async def _internal_error(request, exc):
    state = getattr(request.app.state, "serving", None)
    logger.error("unhandled error on %s %s:\n%s", request.method, request.url.path,
                 describe_failure(exc, log_texts=getattr(state, "log_texts", False)))
    return _error(500, "Internal server error.")


def _endpoint(authenticated):
    """Decorates a handler: authentication first, then `RequestError` and any other failure as a JSON error."""

    def decorate(method):
        @functools.wraps(method)
        async def handler(self, request):
            try:
                if authenticated:
                    self.state.authenticate(request)
                return await method(self, request)
            except RequestError as error:
                return _error(error.status, error.message, error.headers)
            except Exception as error:  # logged here; the client only learns that it failed
                return await _internal_error(request, error)

        return handler

    return decorate


async def _read_json(request, state):
    """The request's JSON body: at most `limits.body_bytes()` bytes (413), received within the body timeout (408,
    and the connection closes), then checked and parsed by `decode_json`. A client that leaves before its body
    arrived gets a 499 that no one reads: the access log and metrics record it apart from server errors."""
    import anyio
    from starlette.requests import ClientDisconnect

    limit = state.limits.body_bytes()
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"The request body is over {limit} bytes: send fewer or shorter texts.")
    chunks, size = [], 0
    try:
        with anyio.fail_after(state.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"The request body is over {limit} bytes: send fewer or shorter texts.")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(408, f"The request body did not arrive within {state.body_timeout_s:g} s "
                                f"({size} bytes came): send it at once.", {"Connection": "close"}) from None
    except ClientDisconnect:
        raise RequestError(CLIENT_CLOSED_REQUEST, "The client disconnected before sending the whole request "
                                                  "body.") from None
    return decode_json(b"".join(chunks), state.limits)


class _Handlers:
    def __init__(self, state):
        self.state = state

    # Open endpoints.

    @_endpoint(authenticated=False)
    async def live(self, request):
        if self.state.failed is not None:
            return _json({"live": False}, 503)
        return _json({"live": True})

    @_endpoint(authenticated=False)
    async def ready(self, request):
        ready = self.state.ready
        return _json({"ready": ready}, 200 if ready else 503)

    @_endpoint(authenticated=False)
    async def model_ready(self, request):
        served = self.state.lookup(request)
        return _json({"name": served.name, "version": served.version, "ready": served.ready},
                     200 if served.ready else 503)

    @_endpoint(authenticated=False)
    async def metrics(self, request):
        from starlette.responses import Response

        for served in self.state.all_versions():
            if served.batcher is not None:
                self.state.metrics.queue_depth.labels(served.name).set(served.batcher.queue_depth)
        body, content_type = self.state.metrics.exposition()
        return Response(body, media_type=content_type)

    # TF Serving REST.

    @_endpoint(authenticated=True)
    async def tfs_status(self, request):
        name = request.path_params["name"]
        if name not in self.state.models:
            raise RequestError(404, f"Model {name!r} is not served here; served models: {sorted(self.state.models)}.")
        versions = {**self.state.retired.get(name, {}), **self.state.pending.get(name, {}), **self.state.models[name]}
        if "version" in request.path_params:
            version = request.path_params["version"]
            if version not in versions:
                raise RequestError(404, f"Model {name!r} has no version {version!r}; versions: {list(versions)}.")
            versions = {version: versions[version]}
        order = sorted(versions, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
        return _json({"model_version_status": [
            {"version": v, "state": versions[v].status,
             "status": {"error_code": "OK" if versions[v].error is None else "UNKNOWN",
                        "error_message": versions[v].error or ""}} for v in order]})

    @_endpoint(authenticated=True)
    async def tfs_metadata(self, request):
        served = self.state.lookup_ready(request)
        described = served.describe()

        def tensors(items, prefix):
            return {item["name"]: {"dtype": _TF_DTYPES[item["datatype"]],
                                   "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in item["shape"]],
                                                    "unknown_rank": False},
                                   "name": f"{prefix}{item['name']}:0"} for item in items}

        signature = {"inputs": tensors(described["inputs"], "serving_default_"),
                     "outputs": tensors(described["outputs"], "StatefulPartitionedCall:"),
                     "method_name": "tensorflow/serving/predict"}
        return _json({"model_spec": {"name": served.name, "signature_name": "", "version": served.version},
                      "metadata": {"signature_def": {"signature_def": {"serving_default": signature}},
                                   "tunekit": described}})

    @_endpoint(authenticated=True)
    async def labels(self, request):
        served = self.state.lookup_ready(request)
        return _json({"model": served.name, "version": served.version, "labels": served.labels})

    @_endpoint(authenticated=True)
    async def tfs_predict(self, request):
        served = self.state.lookup_ready(request)
        with _in_flight(served):
            body = await _read_json(request, self.state)
            texts, pairs, fmt = parse_tfserving(body, num_segments=served.num_segments, limits=self.state.limits)
            outputs = await self._predict(request, served, texts, pairs)
        return _json(format_tfserving(outputs, fmt))

    # KServe v2.

    @_endpoint(authenticated=True)
    async def server_metadata(self, request):
        from tunekit import __version__

        return _json({"name": "tunekit", "version": __version__, "extensions": []})

    @_endpoint(authenticated=True)
    async def kserve_metadata(self, request):
        served = self.state.lookup_ready(request)
        described = served.describe()
        return _json({"name": served.name, "versions": list(self.state.models[served.name]),
                      "platform": f"tunekit_{described['kind'] or 'artifact'}",
                      "inputs": described["inputs"], "outputs": described["outputs"]})

    @_endpoint(authenticated=True)
    async def kserve_infer(self, request):
        served = self.state.lookup_ready(request)
        with _in_flight(served):
            return await self._kserve_infer(request, served)

    async def _kserve_infer(self, request, served):
        body = await _read_json(request, self.state)
        texts, pairs, requested = parse_kserve(body, num_segments=served.num_segments, limits=self.state.limits)
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError(400, f"'id' must be a string, got {type(request_id).__name__}.")
        if request_id is not None and not request_id.isascii():
            try:
                request_id.encode("utf-8")  # echoed in the response, which must be UTF-8
            except UnicodeEncodeError as error:
                raise RequestError(400, f"'id' is not valid Unicode ({error.reason} at position {error.start}): "
                                        "send a plain string.") from None
        if requested is not None:
            unknown = sorted(set(requested) - set(served.outputs))
            if unknown:
                raise RequestError(400, f"Unknown outputs {unknown}; this model has {sorted(served.outputs)}.")
        outputs = await self._predict(request, served, texts, pairs)
        return _json(format_kserve(outputs, model_name=served.name, model_version=served.version,
                                   request_id=request_id, requested=requested))

    # Shared prediction path.

    async def _predict(self, request, served, texts, pairs):
        log = {"model": served.name, "version": served.version, "texts": len(texts)}
        if self.state.log_texts:
            log["inputs"] = [mask_text(text) for text in texts]
            if pairs is not None:
                log["input_pairs"] = [mask_text(text) for text in pairs]
        request.scope["tunekit.log"] = log
        metrics = self.state.metrics
        metrics.observe_inputs(served.name, texts)
        try:
            outputs = await served.batcher.predict(texts, pairs)
        except QueueFullError:
            raise RequestError(503, "The server is overloaded: retry later.",
                               {"Retry-After": str(RETRY_AFTER_S)}) from None
        except PredictionTimeoutError as error:
            raise RequestError(504, f"The prediction timed out ({error}).") from None
        metrics.observe_labels(served.name, _predicted_labels(outputs, served.labels))
        return outputs


@contextlib.contextmanager
def _in_flight(served):
    """Counts a request on its model version from routing to answer: a retired version unloads only at 0."""
    served.in_flight += 1
    try:
        yield
    finally:
        served.in_flight -= 1


def _predicted_labels(outputs, labels):
    """Label names predicted for each text (one per text for classification, several for multi-label)."""
    if "label" in outputs:
        return [value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                for value in outputs["label"].reshape(-1)]
    if "class_id" in outputs:
        return [labels[i] if labels else str(i) for i in outputs["class_id"].reshape(-1).tolist()]
    if "predicted" in outputs and labels:
        return [labels[j] for row in outputs["predicted"] for j, hit in enumerate(row) if hit]
    return []
