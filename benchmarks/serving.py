"""Load test of `tunekit serve`: real server processes, a real HTTP load generator, localhost only.

Serves the `minilm-l6` classifier (6 layers, seq_length 128; the head is untrained, which does not change the cost
of a prediction) as its float32 SavedModel export and as its LiteRT int8 artifact (`tunekit.deploy.export_tflite`,
dynamic-range int8), and sends 1-text TF Serving `:predict` requests, alternating IMDB test reviews and SST-2 dev
sentences, from N concurrent keep-alive clients (`--clients`, default 200) for `--duration` seconds:

1. offline: `load_artifact(path).predict` of each, in batches of 1 and of the server's batch size (32): texts/s;
2. the server, float32 vs int8, with 1 vs `--workers` N workers (default 2): throughput, p50/p95/p99 latency and
   errors (any answer other than 200, or a failed connection). Rows: float32 with micro-batching (the defaults) on
   1 and N workers; int8 with micro-batching and without (`--max-batch-size 1`), each on 1 and N workers. (float32
   without batching is left out: the last runs measured it at half the batched throughput, at offline batch-1
   speed; for int8 it is measured, since the LiteRT runner already groups short texts itself.)
   The 1-worker float32 server also gets unauthenticated calls (no key, a wrong key, a Basic header);
3. a version switch under load: the int8 artifact served from a versioned folder `minilm/1` (N workers,
   `--poll-seconds 1`) under the full client load; after a steady phase `minilm/2` is copied in (to a hidden temp
   folder beside it, then renamed into place). Reported: failed requests, p99 of the requests running in the window
   from the copy until every worker has made version 2 the default (its log line) plus 1 s, against the steady p99
   before the copy; `/v1/models/minilm` asked on fresh connections confirms version 2 is the one AVAILABLE;
4. rate limit: the int8 server (N workers) with two API keys and `--rate-limit 10/s --rate-burst 10`: one key
   sends `--polite-rate` (8) requests/s, alone and then while a greedy key sends as fast as it can from another
   process over `--greedy-connections` (50) connections: the greedy key's 429s, and the polite key's p99 loaded
   vs alone;

then a Targets table (issue #22): int8 served >= 3x the float32 server's texts/s at the full client count with 0
errors (best row of each); served int8 >= 80% of offline int8 at the same batch size (1 worker); during the version
switch 0 failed requests and p99 <= 2x steady; the over-limit key gets 429s while the other key's p99 stays
<= 1.5x its p99 alone; plus 0 errors on every server row and every unauthenticated call rejected.

    flock -x /tmp/tunekit-cpu.lock timeout 1500 python benchmarks/serving.py   # 200 clients, 30 s each: ~10 min
    # a quick check (~5 minutes, mostly server start-ups), leaving the results file alone:
    python benchmarks/serving.py --clients 8 --duration 3 --offline-seconds 1 --results /tmp/serving-check.txt

Most of the time beyond the load itself is server start-up on 2 busy cores: 10-15 s for one worker, 20-40 s for
two (each loads its own model). The first run also makes both artifacts under /tmp/tunekit-bench (about 1-2
minutes more). Prints the tables (and a JSON line each) and writes them to benchmarks/results/serving-cpu-2core.txt.
"""

import argparse
import asyncio
import contextlib
import csv
import gzip
import io
import json
import multiprocessing
import os
import random
import shutil
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
GREEDY_KEY = "greedy-" + "fedcba9876543210" * 2
MODEL = "minilm"  # the model name in the URLs
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


def export_minilm(path, int8_path):
    """The minilm-l6 classifier's float32 export at `path` and its LiteRT int8 artifact at `int8_path` (each made
    once, from the same weights; the head is untrained)."""
    missing = [p for p in (path, int8_path) if not os.path.isfile(os.path.join(p, "tunekit.json"))]
    if not missing:
        return path, int8_path
    import keras

    import tunekit as tk
    from tunekit.deploy import export_tflite

    keras.utils.set_random_seed(0)
    backbone = tk.load_backbone("minilm-l6", seq_length=128)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    if path in missing:
        tk.export_model(model, path)
    if int8_path in missing:
        os.makedirs(os.path.dirname(os.path.abspath(int8_path)), exist_ok=True)
        started = time.perf_counter()
        export_tflite(model, int8_path, compression="int8", base="minilm-l6, untrained classification head")
        print(f"int8 artifact made in {time.perf_counter() - started:.0f} s", flush=True)
    return path, int8_path


def offline_throughput(path, label, texts, batch_sizes, seconds):
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
        rows.append({"model": label, "batch": batch_size, "texts/s": done / (time.perf_counter() - start)})
    return rows


class Server:
    """`python -m tunekit.serving` in a subprocess, logs to a file."""

    def __init__(self, export, extra_args, log_path, keys=(API_KEY,)):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log_path, self.log_read = log_path, 0
        env = {**os.environ, "TUNEKIT_API_KEYS": ",".join(keys)}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tunekit.serving", export, "--name", MODEL, "--port", str(self.port),
                 *extra_args], stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, workers=1, timeout=300):
        """Returns once the server answers ready and each of its `workers` has logged its model as loaded (the
        first ready worker answers while the others may still be loading, which would take CPU from the load)."""
        deadline, ready, loaded = time.monotonic() + timeout, False, 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited:\n{open(self.log_path).read()[-3000:]}")
            if not ready:
                with contextlib.suppress(OSError):
                    status, _ = asyncio.run(_one_request(self.port, "GET", "/v2/health/ready", None, {}))
                    ready = status == 200
            loaded += sum("loaded model" in line for line in self.new_log_lines())
            if ready and loaded >= workers:
                return
            time.sleep(0.2)
        raise SystemExit("server not ready in time")

    def new_log_lines(self):
        """The complete lines the server (all its workers) has logged since the last call (the log holds an access
        line per request, so it is read from where the last call stopped)."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_read)
            new = log.read()
        complete = new[:new.rfind(b"\n") + 1]
        self.log_read += len(complete)
        return complete.decode("utf-8", "replace").splitlines()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@contextlib.contextmanager
def serving(export, extra_args, log_path, keys=(API_KEY,)):
    """A ready `Server`; its exit code in `server.exit_code` once the block is left."""
    server = Server(export, extra_args, log_path, keys)
    try:
        server.wait_ready(int(extra_args[extra_args.index("--workers") + 1]) if "--workers" in extra_args else 1)
        yield server
    finally:
        server.exit_code = server.stop()


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


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError)


async def load(port, texts, clients, seconds, headers, check=True, stop=None, timeline=None):
    """`clients` concurrent connections sending 1-text `:predict` requests for `seconds` (or, given the
    `asyncio.Event` `stop`, until it is set). With a list `timeline`, each request adds `(started, ended, ok)`."""
    bodies = [json.dumps({"instances": [text]}).encode() for text in texts]
    latencies, statuses, errors = [], {}, []
    stop_at = None if stop is not None else time.perf_counter() + seconds
    counter = iter(range(10**9))

    def running():
        return not stop.is_set() if stop is not None else time.perf_counter() < stop_at

    async def client():
        connection = Connection(port)
        while running():
            body = bodies[next(counter) % len(bodies)]
            started = time.perf_counter()
            try:
                status, data = await asyncio.wait_for(
                    connection.request("POST", f"/v1/models/{MODEL}:predict", body, headers), 120)
            except CONNECTION_ERRORS as error:
                errors.append(type(error).__name__)
                if timeline is not None:
                    timeline.append((started, time.perf_counter(), False))
                connection.close()
                connection = Connection(port)
                continue
            ended = time.perf_counter()
            latencies.append(ended - started)
            statuses[status] = statuses.get(status, 0) + 1
            ok = status == 200
            if check and ok and len(json.loads(data)["predictions"]) != 1:
                errors.append("wrong number of predictions")
                ok = False
            if timeline is not None:
                timeline.append((started, ended, ok))
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, statuses, errors, time.perf_counter() - started


def percentile_ms(latencies, q):
    return 1000 * float(np.percentile(latencies, q)) if len(latencies) else None


def summarize(latencies, statuses, errors, elapsed):
    """Requests, errors (not 200, or failed), texts/s and p50/p95/p99 of one load."""
    ok = statuses.get(200, 0)
    failed = len(errors) + sum(count for status, count in statuses.items() if status != 200)
    row = {"seconds": round(elapsed, 1), "requests ok": ok, "errors": failed, "texts/s": ok / elapsed,
           **{f"p{q} ms": percentile_ms(latencies, q) for q in (50, 95, 99)}}
    if failed:
        row["error kinds"] = json.dumps({**{str(s): c for s, c in statuses.items() if s != 200},
                                         **{e: errors.count(e) for e in set(errors)}})
    return row


def serve_and_load(export, extra_args, fields, texts, args, log_path, unauthenticated=0):
    """One server under `args.clients` clients for `args.duration` s: a row starting with `fields`, and the
    statuses of `unauthenticated` calls sent afterwards (None for 0)."""
    with serving(export, extra_args, log_path) as server:
        result = asyncio.run(load(server.port, texts, args.clients, args.duration, bearer(API_KEY)))
        statuses = asyncio.run(unauthenticated_calls(server.port, texts, unauthenticated)) if unauthenticated else None
    row = {**fields, "clients": args.clients, **summarize(*result), "server exit": server.exit_code}
    print(json.dumps(row), flush=True)
    return row, statuses


async def unauthenticated_calls(port, texts, count):
    """`count` prediction calls without a valid key, a third each: no header, a wrong key, a Basic header."""
    variants = [{}, {"Authorization": "Bearer wrong-" + "x" * 30}, {"Authorization": f"Basic {API_KEY}"}]
    statuses = {}
    connections = [Connection(port) for _ in range(20)]

    async def worker(index):
        for i in range(index, count, len(connections)):
            body = json.dumps({"instances": [texts[i % len(texts)]]}).encode()
            status, _ = await connections[index].request("POST", f"/v1/models/{MODEL}:predict", body, variants[i % 3])
            statuses[status] = statuses.get(status, 0) + 1
        connections[index].close()

    await asyncio.gather(*(worker(i) for i in range(len(connections))))
    return statuses


# Part 2: float32 vs int8, 1 vs N workers, batching on/off.

def server_matrix(export, int8, texts, args, logs):
    """The rows of part 2 (see the module docstring) and the unauthenticated calls' statuses."""
    plans = [("float32 export", export, workers, True) for workers in dict.fromkeys([1, args.workers])]
    plans += [("int8 LiteRT", int8, workers, batching)
              for workers in dict.fromkeys([1, args.workers]) for batching in (True, False)]
    rows, unauthenticated = [], None
    for model, path, workers, batching in plans:
        extra = ["--workers", str(workers)] + ([] if batching else ["--max-batch-size", "1"])
        fields = {"model": model, "workers": workers,
                  "batching": f"on (max {args.max_batch_size})" if batching else "off (--max-batch-size 1)"}
        log = os.path.join(logs, f"server-{model.split()[0]}-{workers}w-{'batched' if batching else 'unbatched'}.log")
        row, statuses = serve_and_load(path, extra, fields, texts, args, log,
                                       unauthenticated=args.unauthenticated if not rows else 0)
        rows.append(row)
        unauthenticated = unauthenticated or statuses
    return rows, unauthenticated


# Part 3: a version switch under load.

def copy_version(base, source, version):
    """Copies the folder `source` to `base/version` as a deployment would: into a hidden temp folder beside it,
    then renamed into place (so the server never sees a half-copied version)."""
    staging = os.path.join(base, f".incoming-{version}")
    shutil.copytree(source, staging)
    os.rename(staging, os.path.join(base, str(version)))


async def version_states(port, asks):
    """`/v1/models/minilm` asked `asks` times on fresh connections (which worker answers is the kernel's
    choice): a list of `{version: state}`, or an error string per failed ask."""
    answers = []
    for _ in range(asks):
        try:
            status, data = await asyncio.wait_for(
                _one_request(port, "GET", f"/v1/models/{MODEL}", None, bearer(API_KEY)), 60)
        except CONNECTION_ERRORS as error:
            answers.append(type(error).__name__)
            continue
        answers.append({v["version"]: v["state"] for v in json.loads(data)["model_version_status"]}
                       if status == 200 else f"HTTP {status}")
    return answers


async def switch_under_load(server, base, texts, args):
    """The full client load on `server` (serving `base/1`); `base/2` copied in after a steady phase; the load
    goes on until every worker has made version 2 the default, and `settle` seconds more."""
    steady_s, settle_s = max(4.0, 0.4 * args.duration), max(2.0, 0.3 * args.duration)
    stop, timeline = asyncio.Event(), []
    began = time.perf_counter()
    loading = asyncio.create_task(load(server.port, texts, args.clients, None, bearer(API_KEY), stop=stop,
                                       timeline=timeline))
    await asyncio.sleep(steady_s)
    copy_began = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, copy_version, base, os.path.join(base, "1"), 2)
    copied = time.perf_counter()
    switched, defaults = None, 0  # workers that have logged version 2 as their default
    while time.perf_counter() - copy_began < args.switch_timeout:
        defaults += sum("version 2 is now the default" in line for line in server.new_log_lines())
        if defaults >= args.workers:
            switched = time.perf_counter()
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(settle_s)
    states = await version_states(server.port, 2 * args.workers + 2)
    stop.set()
    result = await loading
    return {"began": began, "copy_began": copy_began, "copied": copied, "switched": switched, "states": states,
            "timeline": timeline, "result": result}


def version_switch(int8, texts, args, logs):
    """Part 3: the switch row (see the module docstring)."""
    base = os.path.join(tempfile.mkdtemp(prefix="tunekit-versions-"), MODEL)
    os.makedirs(base)
    shutil.copytree(int8, os.path.join(base, "1"))
    extra = ["--workers", str(args.workers), "--poll-seconds", "1"]
    with serving(base, extra, os.path.join(logs, "server-switch.log")) as server:
        run = asyncio.run(switch_under_load(server, base, texts, args))
    timeline, copy_began, switched = run["timeline"], run["copy_began"], run["switched"]
    window_end = (switched if switched is not None else max(end for _, end, _ in timeline)) + 1.0
    warm_up = (copy_began - run["began"]) / 4
    steady = [end - start for start, end, _ in timeline if start >= run["began"] + warm_up and end < copy_began]
    window = [(end - start, ok) for start, end, ok in timeline if start < window_end and end > copy_began]
    after = [end - start for start, end, _ in timeline if start >= window_end]
    two = [s for s in run["states"] if isinstance(s, dict)]
    confirmed = len(two) == len(run["states"]) and all(
        s.get("2") == "AVAILABLE" and [v for v, state in s.items() if state == "AVAILABLE"] == ["2"] for s in two)
    steady_p99 = percentile_ms(steady, 99)
    window_p99 = percentile_ms([latency for latency, _ in window], 99)
    row = {"model": "int8 LiteRT", "workers": args.workers, "clients": args.clients,
           **{k: v for k, v in summarize(*run["result"]).items() if k not in ("p50 ms", "p95 ms", "p99 ms")},
           "failed in window": sum(not ok for _, ok in window),
           "copy s": round(run["copied"] - copy_began, 2),
           "copy to default s": None if switched is None else round(switched - copy_began, 2),
           "steady p99 ms": steady_p99, "window p99 ms": window_p99,
           "window/steady": window_p99 / steady_p99 if steady_p99 and window_p99 else None,
           "after p99 ms": percentile_ms(after, 99),
           "v2 default": confirmed,
           "states seen": json.dumps(two[-1] if two else run["states"][-1:]),
           "server exit": server.exit_code}
    print(json.dumps(row), flush=True)
    return row


# Part 4: a greedy key over its rate limit, another key within it.

def greedy_process(port, connections, seconds, ready, results):
    """Runs in its own process: `connections` connections sending `:predict` with GREEDY_KEY as fast as they can
    for `seconds` once `ready` is set; puts `{status or error: count}` on `results`."""
    body = json.dumps({"instances": ["A short review, sent far too often."]}).encode()
    counts = {}

    async def client(stop_at):
        connection = Connection(port)
        while time.perf_counter() < stop_at:
            try:
                status, _ = await connection.request("POST", f"/v1/models/{MODEL}:predict", body, bearer(GREEDY_KEY))
            except CONNECTION_ERRORS as error:
                status = type(error).__name__
                connection.close()
                connection = Connection(port)
            counts[status] = counts.get(status, 0) + 1
        connection.close()

    async def main():
        stop_at = time.perf_counter() + seconds
        ready.set()
        await asyncio.gather(*(client(stop_at) for _ in range(connections)))

    asyncio.run(main())
    results.put({str(k): v for k, v in counts.items()})


async def paced(port, texts, rate, seconds, key):
    """One connection sending a 1-text `:predict` every 1/`rate` s (open loop: a late answer makes the next
    request go at once) for `seconds`: latencies, statuses, errors, elapsed."""
    connection = Connection(port)
    latencies, statuses, errors = [], {}, []
    began = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        body = json.dumps({"instances": [texts[i % len(texts)]]}).encode()
        started = time.perf_counter()
        try:
            status, _ = await asyncio.wait_for(
                connection.request("POST", f"/v1/models/{MODEL}:predict", body, bearer(key)), 120)
        except CONNECTION_ERRORS as error:
            errors.append(type(error).__name__)
            connection.close()
            connection = Connection(port)
            continue
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    connection.close()
    return latencies, statuses, errors, time.perf_counter() - began


def rate_limit(int8, texts, args, logs):
    """Part 4: rows for the polite key alone, the polite key beside the greedy one, and the greedy key."""
    extra = ["--workers", str(args.workers), "--rate-limit", args.rate_limit, "--rate-burst", str(args.rate_burst)]
    context = multiprocessing.get_context("spawn")
    with serving(int8, extra, os.path.join(logs, "server-ratelimit.log"), keys=(API_KEY, GREEDY_KEY)) as server:
        alone = asyncio.run(paced(server.port, texts, args.polite_rate, args.duration, API_KEY))
        ready, results = context.Event(), context.Queue()
        greedy = context.Process(target=greedy_process,
                                 args=(server.port, args.greedy_connections, args.duration + 1, ready, results))
        greedy.start()
        if not ready.wait(120):
            greedy.terminate()
            raise SystemExit("the greedy client did not start")
        beside = asyncio.run(paced(server.port, texts, args.polite_rate, args.duration, API_KEY))
        greedy_counts = results.get(timeout=300)
        greedy.join()
    rows = []
    for label, (latencies, statuses, errors, elapsed) in (("polite key alone", alone),
                                                           ("polite key beside the greedy one", beside)):
        rows.append({"client": label, "requests/s": f"{args.polite_rate:g} paced", "seconds": round(elapsed, 1),
                     "200": statuses.get(200, 0), "429": statuses.get(429, 0),
                     "other": len(errors) + sum(c for s, c in statuses.items() if s not in (200, 429)),
                     **{f"p{q} ms": percentile_ms(latencies, q) for q in (50, 99)}})
    greedy_seconds = args.duration + 1
    rows.append({"client": "greedy key", "requests/s": f"max, {args.greedy_connections} connections",
                 "seconds": greedy_seconds, "200": greedy_counts.get("200", 0), "429": greedy_counts.get("429", 0),
                 "other": sum(c for s, c in greedy_counts.items() if s not in ("200", "429"))})
    for row in rows:
        row["server exit"] = server.exit_code
    print(json.dumps(rows), flush=True)
    return rows


def targets(matrix, offline, switch, limits, unauthenticated, args):
    """The Targets table: issue #22's targets, then the ones kept from earlier runs."""

    def best(model):
        return max((row for row in matrix if row["model"] == model), key=lambda row: row["texts/s"])

    def name(row):
        return f"{row['model']}, {row['workers']}w, batching {row['batching'].split()[0]}"

    def offline_rate(batch):
        return next(row["texts/s"] for row in offline if row["model"] == "int8 LiteRT" and row["batch"] == batch)

    def served_int8(batching):
        return next(row for row in matrix if row["model"] == "int8 LiteRT" and row["workers"] == 1
                    and row["batching"].startswith(batching))

    int8, float32 = best("int8 LiteRT"), best("float32 export")
    batched, unbatched = served_int8("on"), served_int8("off")
    alone, beside, greedy = limits
    ratio = switch["window/steady"]
    rows = [
        {"target": f"int8 served >= 3x float32 served texts/s at {args.clients} clients, 0 errors",
         "measured": int8["texts/s"] / float32["texts/s"], "compared": f"{name(int8)} vs {name(float32)}",
         "met": int8["texts/s"] >= 3 * float32["texts/s"] and int8["errors"] == 0},
        {"target": f"served int8 >= 80% of offline int8, batch {args.max_batch_size}",
         "measured": batched["texts/s"] / offline_rate(args.max_batch_size), "compared": name(batched),
         "met": batched["texts/s"] >= 0.8 * offline_rate(args.max_batch_size)},
        {"target": "served int8 >= 80% of offline int8, batch 1",
         "measured": unbatched["texts/s"] / offline_rate(1), "compared": name(unbatched),
         "met": unbatched["texts/s"] >= 0.8 * offline_rate(1)},
        {"target": "version switch: 0 failed requests, version 2 the default",
         "measured": switch["errors"], "compared": f"v2 default: {switch['v2 default']}",
         "met": switch["errors"] == 0 and switch["v2 default"]},
        {"target": "version switch: p99 in the window <= 2x steady p99", "measured": ratio,
         "compared": f"{switch['window p99 ms']:.0f} vs {switch['steady p99 ms']:.0f} ms" if ratio else "",
         "met": ratio is not None and ratio <= 2},
        {"target": "over-limit key gets 429s", "measured": greedy["429"], "compared": f"{greedy['200']} answered 200",
         "met": greedy["429"] > 0},
        {"target": "other key's p99 <= 1.5x its p99 alone, no 429", "measured": beside["p99 ms"] / alone["p99 ms"],
         "compared": f"{beside['p99 ms']:.0f} vs {alone['p99 ms']:.0f} ms, {beside['429']} 429s",
         "met": beside["p99 ms"] <= 1.5 * alone["p99 ms"] and beside["429"] == 0 and beside["other"] == 0},
        {"target": f"0 errors on every server row at {args.clients} clients",
         "measured": sum(row["errors"] for row in matrix), "compared": f"{len(matrix)} rows",
         "met": all(row["errors"] == 0 for row in matrix)},
    ]
    if unauthenticated:
        rows.append({"target": "100% of unauthenticated calls rejected",
                     "measured": unauthenticated.get(401, 0) / sum(unauthenticated.values()), "compared": "",
                     "met": set(unauthenticated) == {401}})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per server row and phase")
    parser.add_argument("--workers", type=int, default=2, help="the N of the N-worker rows, the switch and the "
                                                               "rate-limit server (default %(default)s)")
    parser.add_argument("--offline-seconds", type=float, default=10.0, help="seconds per offline batch size")
    parser.add_argument("--unauthenticated", type=int, default=3000, help="unauthenticated calls to send")
    parser.add_argument("--switch-timeout", type=float, default=120.0,
                        help="most seconds to wait for version 2 to become the default")
    parser.add_argument("--rate-limit", default="10/s", help="the rate-limit server's --rate-limit")
    parser.add_argument("--rate-burst", type=int, default=10, help="the rate-limit server's --rate-burst")
    parser.add_argument("--polite-rate", type=float, default=8.0, help="requests/s of the key within its limit")
    parser.add_argument("--greedy-connections", type=int, default=50)
    parser.add_argument("--export-dir", default=os.path.join("/tmp", "tunekit-bench", "minilm-l6-export"))
    parser.add_argument("--int8-dir", default=os.path.join("/tmp", "tunekit-bench", "minilm-l6-int8"))
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args()
    from tunekit.serving.app import DEFAULTS

    args.max_batch_size = DEFAULTS["max_batch_size"]
    output = io.StringIO()

    def report(title, rows):
        print_table(title, rows, record=output)

    started = time.perf_counter()
    export, int8 = export_minilm(args.export_dir, args.int8_dir)
    texts = mixed_texts(4000)
    header = (f"# benchmarks/serving.py --clients {args.clients} --duration {args.duration:g} --workers "
              f"{args.workers}\n# {machine()}\n# model: minilm-l6 classifier (untrained head), seq_length 128, as "
              "float32 SavedModel export and LiteRT int8 artifact; texts: alternating IMDB test reviews and SST-2 "
              f"dev sentences (median {int(np.median([len(t) for t in texts]))} characters)\n")
    print(header, end="")
    output.write(header)
    batches = (1, args.max_batch_size)
    offline = (offline_throughput(export, "float32 export", texts, batches, args.offline_seconds)
               + offline_throughput(int8, "int8 LiteRT", texts, batches, args.offline_seconds))
    report("Offline (load_artifact(...).predict, no server)", offline)
    logs = tempfile.mkdtemp(prefix="tunekit-serving-bench-")  # the servers' JSON logs, access lines included
    matrix, unauthenticated = server_matrix(export, int8, texts, args, logs)
    report(f"HTTP load: {args.clients} concurrent clients, 1 text per request", matrix)
    switch = version_switch(int8, texts, args, logs)
    report(f"Version switch under load: minilm/2 copied in while {args.clients} clients send (--poll-seconds 1)",
           [switch])
    limits = rate_limit(int8, texts, args, logs)
    report(f"Rate limit {args.rate_limit}, burst {args.rate_burst} per key: a greedy key beside a polite one", limits)
    report("Targets", targets(matrix, offline, switch, limits, unauthenticated, args))
    if unauthenticated:
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
