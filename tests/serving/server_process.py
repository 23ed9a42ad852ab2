"""Helpers of the serving tests: API keys, free ports, a real server process (`python -m tunekit.serving`), and an
ASGI app served by uvicorn in a thread."""

import os
import socket
import subprocess
import sys
import threading
import time

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
LABELS_V1 = ["negative", "positive"]
LABELS_V2 = ["bad", "good"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m tunekit serve ...` (or `command`) on a free port, its log in a file; `url`, `log()`, `stop()`."""

    def __init__(self, args, tmp_path, env=None, command=("tunekit", "serve")):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"server-{self.port}.log"
        environ = {key: value for key, value in os.environ.items() if key != "TUNEKIT_API_KEYS"}
        environ.update(env or {})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", *command, *args, "--port", str(self.port)],
                                            stdout=log, stderr=subprocess.STDOUT, env=environ)

    def log(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, path, status=200, timeout=120.0):
        """Polls `path` until it answers `status`; returns the statuses seen before."""
        import httpx

        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                answer = httpx.get(self.url + path, timeout=2.0).status_code
            except httpx.TransportError:
                answer = None
            if answer == status:
                return seen
            seen.append(answer)
            time.sleep(0.05)
        raise AssertionError(f"{path} did not answer {status} within {timeout} s:\n{self.log()[-3000:]}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve_in_thread(app):
    """`app` served by uvicorn on a free port in a daemon thread: (server, thread, url); stop with
    `server.should_exit = True` and `thread.join()`."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread, url
