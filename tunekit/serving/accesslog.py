"""An ASGI middleware that writes one structured JSON access-log line per request and records its metrics.

Each line (logger `tunekit.serving.access`, level INFO) holds time, request id, client, method, path (no query
string), route template, status, duration and, for predictions, model, version and number of texts. Headers are
never logged, so neither are API keys. The request id is the caller's `X-Request-ID` (if short and plain) or a
new one, and is sent back in `X-Request-ID`.

Example:

>>> from starlette.applications import Starlette
>>> from starlette.testclient import TestClient
>>> from tunekit.serving.metrics import ServingMetrics
>>> app = AccessLogMiddleware(Starlette(), metrics=ServingMetrics())
>>> response = TestClient(app).get("/nowhere", headers={"X-Request-ID": "req-42"})
>>> response.status_code, response.headers["X-Request-ID"]     # and one JSON line on tunekit.serving.access
(404, 'req-42')
"""

import json
import logging
import re
import time
import uuid

access_logger = logging.getLogger("tunekit.serving.access")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


class AccessLogMiddleware:
    """Wraps an ASGI app: access log line + `ServingMetrics.observe_request` for every HTTP request."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = request_id.decode() if _REQUEST_ID.match(request_id) else uuid.uuid4().hex
        scope["tunekit.request_id"] = request_id
        status = 500  # if the app fails before answering

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            route = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(route, scope["method"], status, seconds)
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                line = {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                    "request_id": request_id,
                    "client": client[0] if client else None,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                }
                line.update(scope.get("tunekit.log", {}))
                access_logger.info(json.dumps(line, ensure_ascii=False))
