"""`tunekit serve`: arguments and entry point (imports no server dependency until `main` runs).

The `tunekit` command wires this as its `serve` subcommand (`add_arguments(parser)`, then `main(args)`);
`python -m tunekit.serving` runs it on its own.

Example:

>>> import argparse
>>> parser = add_arguments(argparse.ArgumentParser())
>>> args = parser.parse_args(["exports/imdb", "--name", "imdb", "--port", "8500"])
>>> args.name, args.port, args.max_batch_size, args.workers, args.rate_limit
(['imdb'], 8500, 32, None, None)

With `--workers N` (N > 1) this process binds the port, then supervises N worker processes (uvicorn's
`Multiprocess` supervisor: spawned processes that share the listening socket, each loading the models once); it
restarts a worker that dies, and on SIGTERM stops them all gracefully. Metrics are aggregated across the workers
through prometheus-client's multiprocess mode, and the rate-limit buckets are shared (see
`tunekit.serving.ratelimit`).
"""

import argparse
import functools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time

from tunekit.formats import TFLITE_FILE
from tunekit.serving.auth import API_KEYS_ENV
from tunekit.serving.ratelimit import RateLimiter, parse_burst, parse_rate
from tunekit.serving.versions import DEFAULT_POLL_S

DEFAULT_PORT = 8500
DEFAULT_GRACEFUL_TIMEOUT_S = 30.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_MAX_CONNECTIONS = 1000
WORKER_HEALTHCHECK_S = 30  # a worker that does not answer the supervisor's ping for this long is replaced
CORES_PER_WORKER = {"export": 4, "tflite": 2}  # see default_workers
EXIT_CODES = ("exit status: 0 after SIGTERM/SIGINT (in-flight requests finished), 1 failure (the port is in use, "
              "a model failed to load), 2 bad usage (arguments, API keys, missing serve extra)")


def add_arguments(parser):
    """Adds the `serve` arguments to an `argparse` parser (and the exit codes as its epilog, unless it has one)."""
    from tunekit.serving.app import DEFAULTS

    if parser.epilog is None:
        parser.epilog = EXIT_CODES
    parser.add_argument("export_dirs", nargs="+", metavar="EXPORT_DIR",
                        help="directory written by tunekit.export_model, or a folder of numbered version "
                             "directories (1/, 2/, ...; the highest is the default version)")
    parser.add_argument("--name", action="append", default=None,
                        help="model name in the URLs, once per EXPORT_DIR in the same order "
                             "(default: the directory's name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}); a port already in use stops the server at once with "
                             "exit status 1")
    parser.add_argument("--api-key-file", default=None,
                        help=f"file of API keys, one per line (added to the comma-separated ${API_KEYS_ENV})")
    parser.add_argument("--allow-unauthenticated", action="store_true",
                        help="serve without API keys (refused otherwise); only behind your own authentication")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULTS["max_batch_size"],
                        help="most texts per model call; 1 turns micro-batching off (default %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=DEFAULTS["max_wait_ms"],
                        help="how long a batch waits to fill up once the model is free (default %(default)s)")
    parser.add_argument("--max-queue", type=int, default=DEFAULTS["max_queue"],
                        help="most texts waiting per model before 503 + Retry-After (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULTS["timeout_s"],
                        help="per-request limit in seconds, queueing included, before a 504 (default %(default)s)")
    parser.add_argument("--max-texts", type=int, default=DEFAULTS["max_texts"],
                        help="most texts per request, else 413 (default %(default)s)")
    parser.add_argument("--max-text-bytes", type=int, default=DEFAULTS["max_text_bytes"],
                        help="most UTF-8 bytes per text, else 413 (default %(default)s)")
    parser.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT_S,
                        help="seconds a connection may take to send a request's headers (from connecting, or from "
                             "the last response) before it is closed (default %(default)s)")
    parser.add_argument("--body-timeout", type=float, default=DEFAULTS["body_timeout_s"],
                        help="seconds a request body may take to arrive, else 408 and the connection is closed "
                             "(default %(default)s)")
    parser.add_argument("--keep-alive", type=int, default=DEFAULT_KEEP_ALIVE_S,
                        help="seconds an idle keep-alive connection stays open between requests "
                             "(default %(default)s)")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="most open connections; beyond it new requests get 503 at once (default %(default)s)")
    parser.add_argument("--graceful-timeout", type=float, default=DEFAULT_GRACEFUL_TIMEOUT_S,
                        help="on SIGTERM, seconds to finish in-flight requests (default %(default)s)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level; access logs are JSON lines at info (default %(default)s)")
    parser.add_argument("--log-texts", action="store_true",
                        help="also log request texts (access log) and the messages of failed predictions, with "
                             "e-mail addresses, phone numbers and runs of 6+ digits masked; by default no request "
                             "text is ever logged")
    parser.add_argument("--rate-limit", type=_argument(parse_rate), default=None, metavar="N/s|N/m",
                        help="requests per API key per second (10/s) or minute (600/m), a token bucket per key "
                             "shared by all workers; over it a request gets 429 + Retry-After (default: no limit)")
    parser.add_argument("--rate-burst", type=_argument(parse_burst), default=None, metavar="N",
                        help="most requests a key may send at once before the rate applies (the bucket size; "
                             "default: one second's worth, at least 1)")
    parser.add_argument("--poll-seconds", type=_argument(_parse_poll_seconds), default=DEFAULT_POLL_S, metavar="S",
                        help="how often to look for new model versions in an EXPORT_DIR of numbered versions: a new "
                             "complete one is loaded, warmed up and made the default, the older ones unloaded; 0 "
                             "reads versions at start only (default %(default)s)")
    parser.add_argument("--workers", type=_argument(_parse_workers), default=None, metavar="N",
                        help="server processes sharing the port, each with its own copy of the models (default: "
                             "one per 4 cores for a SavedModel export, one per 2 cores for a TFLite artifact, at "
                             "least 1)")
    return parser


def _argument(parse):
    """An argparse `type=` from a parser raising ValueError: argparse then prints its message and exits with 2."""

    def convert(value):
        try:
            return parse(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def _parse_poll_seconds(value):
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"invalid poll interval {value!r}: give seconds >= 0 (0 turns the polling off).")
    return seconds


def _parse_workers(value):
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"invalid number of workers {value!r}: give an integer >= 1.")
    return int(text)


def default_workers(export_dirs, cores=None):
    """Worker processes for these exports: one per 4 cores when any is a SavedModel export (TensorFlow already
    spreads one model call over the cores, so more processes mostly add memory), one per 2 cores for TFLite
    artifacts only (the LiteRT interpreter uses the cores less well on the small batches a server runs); at
    least 1."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    kinds = {_artifact_kind(path) for path in export_dirs}
    per_worker = max(CORES_PER_WORKER[kind] for kind in kinds)
    return max(1, cores // per_worker)


def _artifact_kind(path):
    """"tflite" when the export directory (or each of its numbered versions) holds a TFLite model, else "export"."""
    from tunekit.serving.models import resolve_versions

    versions = resolve_versions(path).values()
    if all(os.path.isfile(os.path.join(version, TFLITE_FILE)) for version in versions):
        return "tflite"
    return "export"


def main(args):
    """Runs the server until SIGTERM/SIGINT; returns the exit code (0 clean stop, 1 failure such as a model that
    fails to load or a port in use, 2 bad usage)."""
    _configure_logging(args.log_level)
    log = logging.getLogger("tunekit.serving")
    try:
        from tunekit.serving import load_api_keys, require_serve_extra

        require_serve_extra()
        names = args.name or [os.path.basename(os.path.normpath(path)) for path in args.export_dirs]
        if len(names) != len(args.export_dirs):
            raise ValueError(f"Got {len(args.export_dirs)} EXPORT_DIRs but {len(names)} --name: give one --name "
                             "per EXPORT_DIR, in the same order.")
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate model names in {names}: to serve several versions of one model, put "
                             "them in numbered subdirectories (NAME/1, NAME/2) and pass the parent directory.")
        _check_connection_limits(args)
        if args.rate_burst is not None and args.rate_limit is None:
            raise ValueError("--rate-burst needs --rate-limit: give the rate too, e.g. --rate-limit 10/s "
                             f"--rate-burst {args.rate_burst}.")
        keys = load_api_keys(args.api_key_file)
        if not keys and not args.allow_unauthenticated:
            raise ValueError(f"No API keys: set {API_KEYS_ENV} (comma-separated) or pass --api-key-file; or pass "
                             "--allow-unauthenticated to serve without authentication.")
        if not keys:
            log.warning("serving WITHOUT authentication (--allow-unauthenticated)")
        workers = default_workers(args.export_dirs) if args.workers is None else args.workers
        rate_limiter = None
        if args.rate_limit is not None:
            rate_limiter = RateLimiter(args.rate_limit, args.rate_burst, keys=max(1, len(keys)))
        settings = {"models": dict(zip(names, args.export_dirs)), "api_keys": keys,
                    "allow_unauthenticated": args.allow_unauthenticated, "max_texts": args.max_texts,
                    "max_text_bytes": args.max_text_bytes, "max_batch_size": args.max_batch_size,
                    "max_wait_ms": args.max_wait_ms, "max_queue": args.max_queue, "timeout_s": args.timeout,
                    "body_timeout_s": args.body_timeout, "rate_limiter": rate_limiter, "log_texts": args.log_texts,
                    "poll_seconds": args.poll_seconds}
        app = build_app(settings)  # checks every setting and export directory before the port is taken
        import uvicorn

        from tunekit.serving.connections import HeaderTimeoutProtocol, listen
    except (ValueError, TypeError, ImportError) as error:
        log.error("%s", error)
        return 2
    try:
        sock = listen(args.host, args.port)  # before the models load: a port in use fails at once
    except OSError as error:
        log.error("%s", error)
        return 1
    options = {"host": args.host, "port": args.port, "access_log": False, "log_config": None, "lifespan": "on",
               "timeout_graceful_shutdown": args.graceful_timeout, "server_header": False, "ws": "none",
               "http": functools.partial(HeaderTimeoutProtocol, header_timeout_s=args.header_timeout),
               "timeout_keep_alive": args.keep_alive, "limit_concurrency": args.max_connections}
    log.info("serving %s on http://%s:%d (%d API keys, %d worker%s)", ", ".join(names), args.host, args.port,
             len(keys), workers, "s" if workers > 1 else "")
    if workers > 1:
        return _run_workers(settings, workers, options, sock, args.log_level)
    server = None

    def stop_on_load_error(error):
        if server is not None:
            server.should_exit = True

    app.state.serving.on_load_error = stop_on_load_error
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # uvicorn handles SIGTERM/SIGINT (stop accepting, finish in-flight requests), then re-raises the signal under
    # the handlers found at start: these make that re-raise a no-op, so a graceful stop exits with 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: None)
    server.run(sockets=[sock])
    if app.state.serving.failed is not None or not server.started:
        return 1
    log.info("stopped")
    return 0


def build_app(settings, load_before_serving=False):
    """The app of `tunekit serve` from its settings (a dict of plain values and the shared `RateLimiter`)."""
    from tunekit.serving import Limits, create_app

    settings = dict(settings)
    limits = Limits(settings.pop("max_texts"), settings.pop("max_text_bytes"))
    return create_app(settings.pop("models"), limits=limits, load_before_serving=load_before_serving, **settings)


def _worker_app(settings, log_level):
    """The app of one worker process (called by uvicorn in the process): its models load before it accepts
    connections, so a worker that is (re)starting leaves requests to the ready ones."""
    _configure_logging(log_level)
    return build_app(settings, load_before_serving=True)


def _run_workers(settings, workers, options, sock, log_level):
    """Runs `workers` processes on `sock` under uvicorn's supervisor until SIGTERM/SIGINT; the exit code."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from tunekit.serving.metrics import MULTIPROC_DIR_ENV

    log = logging.getLogger("tunekit.serving")
    metrics_dir = tempfile.mkdtemp(prefix="tunekit-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # read by prometheus-client in each spawned worker
    try:
        config = uvicorn.Config(functools.partial(_worker_app, settings, log_level), factory=True, workers=workers,
                                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S, **options)
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        log.error("a worker failed to start (see its error above): stopped all workers")
        return 1
    log.info("stopped")
    return 0


def _check_connection_limits(args):
    """Raises a ValueError naming the first unusable connection setting."""
    for flag, value in (("--header-timeout", args.header_timeout), ("--body-timeout", args.body_timeout)):
        if not value > 0:
            raise ValueError(f"{flag} must be a number of seconds > 0, got {value!r}.")
    for flag, value in (("--keep-alive", args.keep_alive), ("--max-connections", args.max_connections)):
        if value < 1:
            raise ValueError(f"{flag} must be an integer >= 1, got {value!r}.")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; access-log records are JSON already and pass through."""

    def format(self, record):
        if record.name == "tunekit.serving.access":
            return record.getMessage()
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _configure_logging(level):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
