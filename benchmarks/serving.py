"""Load test of `tunekit serve`: a real server process, a real HTTP load generator, localhost only.

Serves the `minilm-l6` classifier export (6 layers, seq_length 128; the head is untrained, which does not
change the cost of a prediction) and sends 1-text TF Serving `:predict` requests, alternating IMDB test reviews
and SST-2 dev sentences, from N concurrent keep-alive clients for a fixed time:

1. offline: `load_artifact(export).predict` in batches of 1, 8, 16, 32, 64 (no server): texts/s;
2. server with micro-batching (the defaults) and without (`--max-batch-size 1`): throughput, p50/p95/p99
   latency, errors (any answer other than 200, or a failed connection);
3. unauthenticated calls (no key, a wrong key, a Basic header): how many were rejected.

    flock -x /tmp/tunekit-cpu.lock timeout 600 python benchmarks/serving.py            # 200 clients, 60 s each
    python benchmarks/serving.py --clients 20 --duration 5                             # a quick check

Prints the tables (and a JSON line each) and writes them to benchmarks/results/serving-cpu-2core.txt.
"""

import argparse
import asyncio
import contextlib
import csv
import gzip
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, print_table, shared_data  # noqa: E402

API_KEY = "bench-" + "0123456789abcdef" * 2
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "serving-cpu-2core.txt")


def mixed_texts(count, seed=0):
    """`count` texts alternating IMDB test reviews and SST-2 dev sentences (both shuffled)."""
    with gzip.open(os.path.join(shared_data("imdb"), "test.csv.gz"), "rt", encoding="utf-8", newline="") as file:
        imdb = [row["text"] for row in csv.DictReader(file)]
    with open(os.path.join(shared_data("sst2"), "dev.csv"), encoding="utf-8", newline="") as file:
        sst2 = [row["text"] for row in csv.DictReader(file)]
    rng = random.Random(seed)
    rng.shuffle(imdb)
    rng.shuffle(sst2)
    return [(imdb if i % 2 == 0 else sst2)[(i // 2) % len(imdb if i % 2 == 0 else sst2)] for i in range(count)]


def export_minilm(path):
    """The minilm-l6 classifier export at `path` (made once; the head is untrained)."""
    if os.path.isfile(os.path.join(path, "tunekit.json")):
        return path
    import keras

    import tunekit as tk

    keras.utils.set_random_seed(0)
    backbone = tk.load_backbone("minilm-l6", seq_length=128)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    tk.export_model(model, path)
    return path


def offline_throughput(path, texts, batch_sizes, seconds):
    """Texts/s of `load_artifact(path).predict` at each batch size, no server."""
    from tunekit.deploy import load_artifact

    artifact = load_artifact(path)
    artifact.predict(texts[:64], batch_size=64)  # warm-up
    rows = []
    for batch_size in batch_sizes:
        done, start, position = 0, time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            chunk = texts[position:position + batch_size]
            position = (position + batch_size) % (len(texts) - batch_size)
            artifact.predict(chunk, batch_size=batch_size)
            done += len(chunk)
        rows.append({"mode": f"offline predict, batch {batch_size}", "texts/s": done / (time.perf_counter() - start)})
    return rows


class Server:
    """`python -m tunekit.serving` in a subprocess, logs to a file."""

    def __init__(self, export, extra_args, log_path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log_path = log_path
        env = {**os.environ, "TUNEKIT_API_KEYS": API_KEY}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tunekit.serving", export, "--name", "minilm", "--port", str(self.port),
                 *extra_args], stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited:\n{open(self.log_path).read()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = asyncio.run(_one_request(self.port, "GET", "/v2/health/ready", None, {}))
                if status == 200:
                    return
            time.sleep(0.2)
        raise SystemExit("server not ready in time")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection (asyncio streams), cheap enough to leave the CPU to the
    server."""

    def __init__(self, port):
        self.port, self.reader, self.writer = port, None, None

    async def request(self, method, path, body, headers):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        payload = b"" if body is None else body
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        fields = {name.lower(): value for name, value in fields.items()}
        data = await self.reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _one_request(port, method, path, body, headers):
    connection = Connection(port)
    try:
        return await connection.request(method, path, body, headers)
    finally:
        connection.close()


async def load(port, texts, clients, seconds, headers, check=True):
    """`clients` concurrent connections sending 1-text `:predict` requests for `seconds`."""
    bodies = [json.dumps({"instances": [text]}).encode() for text in texts]
    latencies, statuses, errors = [], {}, []
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client():
        connection = Connection(port)
        while time.perf_counter() < stop_at:
            body = bodies[next(counter) % len(bodies)]
            started = time.perf_counter()
            try:
                status, data = await asyncio.wait_for(
                    connection.request("POST", "/v1/models/minilm:predict", body, headers), 120)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
                errors.append(type(error).__name__)
                connection.close()
                connection = Connection(port)
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if check and status == 200 and len(json.loads(data)["predictions"]) != 1:
                errors.append("wrong number of predictions")
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, statuses, errors, time.perf_counter() - started


def serve_and_load(export, extra_args, label, texts, args, log_path):
    server = Server(export, extra_args, log_path)
    try:
        server.wait_ready()
        latencies, statuses, errors, elapsed = asyncio.run(
            load(server.port, texts, args.clients, args.duration, {"Authorization": f"Bearer {API_KEY}"}))
        unauthenticated = None
        if args.unauthenticated:
            unauthenticated = asyncio.run(unauthenticated_calls(server.port, texts, args.unauthenticated))
    finally:
        exit_code = server.stop()
    ok = statuses.get(200, 0)
    failed = len(errors) + sum(count for status, count in statuses.items() if status != 200)
    row = {"mode": label, "clients": args.clients, "seconds": round(elapsed, 1), "requests ok": ok,
           "errors": failed, "texts/s": ok / elapsed,
           "p50 ms": 1000 * float(np.percentile(latencies, 50)) if latencies else None,
           "p95 ms": 1000 * float(np.percentile(latencies, 95)) if latencies else None,
           "p99 ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
           "server exit": exit_code}
    if failed:
        row["error kinds"] = json.dumps({**{str(s): c for s, c in statuses.items() if s != 200},
                                         **{e: errors.count(e) for e in set(errors)}})
    return row, unauthenticated


async def unauthenticated_calls(port, texts, count):
    """`count` prediction calls without a valid key, a third each: no header, a wrong key, a Basic header."""
    variants = [{}, {"Authorization": "Bearer wrong-" + "x" * 30}, {"Authorization": f"Basic {API_KEY}"}]
    statuses = {}
    connections = [Connection(port) for _ in range(20)]

    async def worker(index):
        for i in range(index, count, len(connections)):
            body = json.dumps({"instances": [texts[i % len(texts)]]}).encode()
            status, _ = await connections[index].request("POST", "/v1/models/minilm:predict", body, variants[i % 3])
            statuses[status] = statuses.get(status, 0) + 1
        connections[index].close()

    await asyncio.gather(*(worker(i) for i in range(len(connections))))
    return statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per server mode")
    parser.add_argument("--offline-seconds", type=float, default=10.0, help="seconds per offline batch size")
    parser.add_argument("--unauthenticated", type=int, default=3000, help="unauthenticated calls to send")
    parser.add_argument("--export-dir", default=os.path.join("/tmp", "tunekit-bench", "minilm-l6-export"))
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args()

    output = io.StringIO()

    def report(title, rows):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            print_table(title, rows)
        print(buffer.getvalue(), end="", flush=True)
        output.write(buffer.getvalue())

    started = time.perf_counter()
    export = export_minilm(args.export_dir)
    texts = mixed_texts(4000)
    header = (f"# benchmarks/serving.py --clients {args.clients} --duration {args.duration:g}\n"
              f"# {machine()}\n# model: minilm-l6 classifier export (untrained head), seq_length 128; texts: "
              f"alternating IMDB test reviews and SST-2 dev sentences (median {int(np.median([len(t) for t in texts]))}"
              " characters)\n")
    print(header, end="")
    output.write(header)
    offline = offline_throughput(export, texts, (1, 8, 16, 32, 64), args.offline_seconds)
    report("Offline (load_artifact(...).predict, no server)", offline)
    logs = tempfile.mkdtemp(prefix="tunekit-serving-bench-")  # the servers' JSON logs, access lines included
    batched, unauthenticated = serve_and_load(export, [], "server, micro-batching (defaults)", texts, args,
                                              os.path.join(logs, "server-batched.log"))
    print(json.dumps(batched), flush=True)
    args.unauthenticated = 0
    unbatched, _ = serve_and_load(export, ["--max-batch-size", "1"], "server, no batching (--max-batch-size 1)",
                                  texts, args, os.path.join(logs, "server-unbatched.log"))
    report(f"HTTP load: {args.clients} concurrent clients, 1 text per request", [batched, unbatched])
    offline64 = offline[-1]["texts/s"]
    report("Targets", [
        {"target": "0 errors at the full client count (batched)", "measured": batched["errors"],
         "met": batched["errors"] == 0},
        {"target": "batched >= 3x unbatched throughput", "measured": batched["texts/s"] / unbatched["texts/s"],
         "met": batched["texts/s"] >= 3 * unbatched["texts/s"]},
        {"target": "batched >= 80% of offline batch-64 throughput", "measured": batched["texts/s"] / offline64,
         "met": batched["texts/s"] >= 0.8 * offline64},
        {"target": "100% of unauthenticated calls rejected",
         "measured": unauthenticated.get(401, 0) / sum(unauthenticated.values()),
         "met": set(unauthenticated) == {401}},
    ])
    total = sum(unauthenticated.values())
    report("Unauthenticated calls (no key / wrong key / Basic header)",
           [{"calls": total, "rejected (401)": unauthenticated.get(401, 0),
             "accepted (200)": unauthenticated.get(200, 0),
             "other": total - unauthenticated.get(401, 0) - unauthenticated.get(200, 0)}])
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w", encoding="utf-8") as file:
        file.write(output.getvalue() + f"\n# total {time.perf_counter() - started:.0f} s; server logs in {logs}\n")

if __name__ == "__main__":
    main()
