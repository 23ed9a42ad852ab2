"""Starting, loading, overload and stopping: refusal without keys, readiness after warm-up, 503 when the queue is
full, graceful SIGTERM; and the embeddable app's error handling."""

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from server_process import API_KEY, ServerProcess, free_port, serve_in_thread

from tunekit.serving import create_app


def test_refuses_to_start_without_keys_and_never_prints_a_key(exports, tmp_path):
    command = [sys.executable, "-m", "tunekit.serving", exports["v1"], "--port", str(free_port())]
    env = {"PATH": "/usr/bin:/bin", "TUNEKIT_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "TUNEKIT_API_KEYS" in result.stderr and "--allow-unauthenticated" in result.stderr
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={**env, "TUNEKIT_API_KEYS": "short-secret"})
    assert result.returncode == 2 and "API key #1" in result.stderr and "short-secret" not in result.stderr
    result = subprocess.run([*command, "--api-key-file", str(tmp_path / "missing.txt")], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 2 and "missing.txt" in result.stderr


def test_a_port_in_use_stops_at_once_with_exit_1_naming_the_port_and_the_fix(exports):
    env = {"PATH": "/usr/bin:/bin", "TUNEKIT_OFFLINE": "1", "TUNEKIT_API_KEYS": API_KEY}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "tunekit.serving", exports["v1"], "--port", str(port)],
                                capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr and time.monotonic() - started < 30
    for flag in ("--header-timeout", "--body-timeout", "--max-connections"):
        bad = subprocess.run([sys.executable, "-m", "tunekit.serving", exports["v1"], flag, "0"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert bad.returncode == 2 and flag in bad.stderr, bad.stderr


def test_cli_imports_without_the_serve_extra_and_names_it(tmp_path):
    script = (
        "import argparse, sys\n"
        "for name in ('starlette', 'uvicorn', 'prometheus_client', 'fastapi'):\n"
        "    sys.modules[name] = None  # as if not installed: imports fail, find_spec answers None\n"
        "from tunekit.serving import cli\n"
        "args = cli.add_arguments(argparse.ArgumentParser()).parse_args([sys.argv[1], '--allow-unauthenticated'])\n"
        "sys.exit(cli.main(args))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert 'pip install \\"tunekit[serve]\\"' in result.stderr  # JSON-escaped in the log line


@pytest.fixture(scope="module")
def slow_server(exports, tmp_path_factory):
    """Keys from a file; batches wait up to 1.5 s to fill; at most 4 texts may wait. Records its startup."""
    root = tmp_path_factory.mktemp("slow")
    (root / "keys.txt").write_text(f"# serving keys\n{API_KEY}\n", encoding="utf-8")
    process = ServerProcess([exports["v1"], "--name", "sentiment", "--api-key-file", str(root / "keys.txt"),
                             "--max-batch-size", "64", "--max-wait-ms", "1500", "--max-queue", "4", "--max-texts", "4",
                             "--timeout", "10",
                             "--graceful-timeout", "10"], root, command=("tunekit.serving",))
    try:
        process.wait_until("/v2/health/live")
        process.ready_while_loading = httpx.get(process.url + "/v2/health/ready").status_code
        process.wait_until("/v2/health/ready")
        yield process
    finally:
        process.stop()


def _post_in_thread(url, texts, results):
    def post():
        results.append(httpx.post(url, headers={"Authorization": f"Bearer {API_KEY}"},
                                  json={"instances": texts}, timeout=30))

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_live_at_once_ready_only_after_load_and_warm_up(slow_server):
    assert slow_server.ready_while_loading == 503
    assert httpx.get(slow_server.url + "/v2/health/ready").json() == {"ready": True}


def test_full_queue_answers_503_with_retry_after(slow_server):
    url = slow_server.url + "/v1/models/sentiment:predict"
    results = []
    waiting = _post_in_thread(url, ["good", "bad", "fine"], results)  # 3 texts wait up to 1.5 s for a fuller batch
    time.sleep(0.5)
    overflow = httpx.post(url, headers={"Authorization": f"Bearer {API_KEY}"}, json={"instances": ["a", "b"]})
    assert overflow.status_code == 503 and overflow.headers["retry-after"] == "1" and "error" in overflow.json()
    waiting.join()
    assert results[0].status_code == 200 and len(results[0].json()["predictions"]) == 3


def test_sigterm_finishes_in_flight_requests_then_exits(slow_server):
    results = []
    in_flight = _post_in_thread(slow_server.url + "/v1/models/sentiment:predict", ["a fine film"], results)
    time.sleep(0.5)  # the request now waits in the batcher
    slow_server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):
        httpx.get(slow_server.url + "/v2/health/live", timeout=2)  # no longer accepting
    in_flight.join()
    assert results[0].status_code == 200
    assert results[0].json()["predictions"][0]["label"] in ("negative", "positive")
    assert slow_server.process.wait(timeout=30) == 0
    assert '"message": "stopped"' in slow_server.log()


class Flaky:
    """A stand-in artifact: it predicts (so it warms up), but fails on the text "boom" like a broken model."""

    labels, task, num_segments, kind = ["no", "yes"], {"name": "classification"}, 1, "test"

    def predict(self, texts, text_pairs=None):
        if "boom" in texts:
            raise RuntimeError("secret internal detail at /srv/models/x")
        return {"class_id": np.ones(len(texts), np.int32), "label": np.array(["yes"] * len(texts), dtype=object)}


class Unloadable(Flaky):
    def predict(self, texts, text_pairs=None):
        raise OSError("disk gone")


def _mounted(app, prefix):
    """`app` mounted at `prefix` in a parent Starlette app that runs its lifespan (as docs/serving.md shows)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    @contextlib.asynccontextmanager
    async def lifespan(parent):
        async with app.router.lifespan_context(app):
            yield

    return Starlette(routes=[Mount(prefix, app=app)], lifespan=lifespan)


def test_embedded_app_hides_internal_errors_and_reports_failed_loads():
    with pytest.raises(ValueError, match="allow_unauthenticated"):
        create_app({"flaky": Flaky()})
    server, thread, url = serve_in_thread(_mounted(create_app({"flaky": Flaky()}, allow_unauthenticated=True), "/ml"))
    url += "/ml"
    try:
        deadline = time.monotonic() + 10
        while httpx.get(url + "/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        ok = httpx.post(url + "/v1/models/flaky:predict", json={"instances": ["fine"]})  # no key needed: open
        assert ok.json() == {"predictions": [{"class_id": 1, "label": "yes"}]}
        broken = httpx.post(url + "/v1/models/flaky:predict", json={"instances": ["boom"]})
        assert broken.status_code == 500 and broken.json() == {"error": "Internal server error."}
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    failures = []
    server, thread, url = serve_in_thread(create_app({"bad": Unloadable()}, allow_unauthenticated=True,
                                                      on_load_error=failures.append))
    try:
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.02)
        assert isinstance(failures[0], OSError)
        assert httpx.get(url + "/v2/health/live").status_code == 503
        assert httpx.get(url + "/v2/health/ready").status_code == 503
        loading = httpx.post(url + "/v1/models/bad:predict", json={"instances": ["x"]})
        assert loading.status_code == 503 and "disk gone" not in loading.text
    finally:
        server.should_exit = True
        thread.join(timeout=10)
