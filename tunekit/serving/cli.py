"""`tunekit serve`: arguments and entry point (imports no server dependency until `main` runs).

The `tunekit` command wires this as its `serve` subcommand (`add_arguments(parser)`, then `main(args)`);
`python -m tunekit.serving` runs it on its own.

Example:

>>> import argparse
>>> parser = add_arguments(argparse.ArgumentParser())
>>> args = parser.parse_args(["exports/imdb", "--name", "imdb", "--port", "8500"])
>>> args.name, args.port, args.max_batch_size
(['imdb'], 8500, 32)
"""

import functools
import json
import logging
import os
import signal
import sys
import time

from tunekit.serving.auth import API_KEYS_ENV

DEFAULT_PORT = 8500
DEFAULT_GRACEFUL_TIMEOUT_S = 30.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5
DEFAULT_MAX_CONNECTIONS = 1000
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
    return parser


def main(args):
    """Runs the server until SIGTERM/SIGINT; returns the exit code (0 clean stop, 1 failure such as a model that
    fails to load or a port in use, 2 bad usage)."""
    _configure_logging(args.log_level)
    log = logging.getLogger("tunekit.serving")
    try:
        from tunekit.serving import Limits, create_app, load_api_keys, require_serve_extra

        require_serve_extra()
        names = args.name or [os.path.basename(os.path.normpath(path)) for path in args.export_dirs]
        if len(names) != len(args.export_dirs):
            raise ValueError(f"Got {len(args.export_dirs)} EXPORT_DIRs but {len(names)} --name: give one --name "
                             "per EXPORT_DIR, in the same order.")
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate model names in {names}: to serve several versions of one model, put "
                             "them in numbered subdirectories (NAME/1, NAME/2) and pass the parent directory.")
        _check_connection_limits(args)
        keys = load_api_keys(args.api_key_file)
        if not keys and not args.allow_unauthenticated:
            raise ValueError(f"No API keys: set {API_KEYS_ENV} (comma-separated) or pass --api-key-file; or pass "
                             "--allow-unauthenticated to serve without authentication.")
        if not keys:
            log.warning("serving WITHOUT authentication (--allow-unauthenticated)")
        import uvicorn

        from tunekit.serving.connections import HeaderTimeoutProtocol, listen

        server = None

        def stop_on_load_error(error):
            if server is not None:
                server.should_exit = True

        app = create_app(dict(zip(names, args.export_dirs)), api_keys=keys,
                         allow_unauthenticated=args.allow_unauthenticated,
                         limits=Limits(args.max_texts, args.max_text_bytes), max_batch_size=args.max_batch_size,
                         max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, timeout_s=args.timeout,
                         body_timeout_s=args.body_timeout, on_load_error=stop_on_load_error)
    except (ValueError, TypeError, ImportError) as error:
        log.error("%s", error)
        return 2
    try:
        sock = listen(args.host, args.port)  # before the models load: a port in use fails at once
    except OSError as error:
        log.error("%s", error)
        return 1
    protocol = functools.partial(HeaderTimeoutProtocol, header_timeout_s=args.header_timeout)
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_config=None,
                            timeout_graceful_shutdown=args.graceful_timeout, server_header=False, http=protocol,
                            ws="none", timeout_keep_alive=args.keep_alive, limit_concurrency=args.max_connections)
    server = uvicorn.Server(config)
    log.info("serving %s on http://%s:%d (%d API keys)", ", ".join(names), args.host, args.port, len(keys))
    # uvicorn handles SIGTERM/SIGINT (stop accepting, finish in-flight requests), then re-raises the signal under
    # the handlers found at start: these make that re-raise a no-op, so a graceful stop exits with 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: None)
    server.run(sockets=[sock])
    if app.state.serving.failed is not None or not server.started:
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
