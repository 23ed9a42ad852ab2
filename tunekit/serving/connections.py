"""Connection-level limits of `tunekit serve`: the listening socket, and a deadline on each request's headers.

uvicorn closes a keep-alive connection that stays idle between requests (`timeout_keep_alive`), but it has no
deadline on receiving a request: a connection that sends nothing, or half a request line, or one header byte at a
time (every byte restarts the keep-alive timer), stays open for ever, and enough of them exhaust the server
(Slowloris). `HeaderTimeoutProtocol` is uvicorn's own h11 protocol plus that deadline: from the moment a
connection is accepted, and again from the end of each response, a request's headers must arrive within
`header_timeout_s`, else the connection is closed. The body has its own deadline in the app (a 408, see
`tunekit.serving.app`), and `limit_concurrency` bounds connections (uvicorn answers 503 beyond it).

Example (what `tunekit serve` does):

>>> import functools
>>> import uvicorn
>>> from tunekit.serving import create_app
>>> app = create_app({"imdb": artifact_dir}, allow_unauthenticated=True)     # artifact_dir: e.g. "exports/imdb"
>>> config = uvicorn.Config(app, http=functools.partial(HeaderTimeoutProtocol, header_timeout_s=10.0))
>>> sock = listen("127.0.0.1", 0)      # port 0: any free one; `tunekit serve` binds --port (8500)
>>> uvicorn.Server(config).run(sockets=[sock])       # serves until stopped    # doctest: +SKIP
>>> sock.close()
"""

import errno
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class PortInUseError(OSError):
    """The port is taken (by another server, or an earlier `tunekit serve` still running)."""


def listen(host, port):
    """A socket bound to `host:port`, ready for `uvicorn.Server.run(sockets=[...])`.

    Binding before the models load means a taken port fails at once, with a `PortInUseError` that names the port
    and the fix (other failures: an `OSError` naming the address). IPv6 hosts contain ':', as uvicorn assumes.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"Port {port} on {host} is already in use (another server, or an earlier "
                                 "`tunekit serve` still running): stop that process, or pick a free port with "
                                 "--port.") from None
        raise OSError(f"Cannot listen on {host}:{port}: {error.strerror or error} (check --host and --port).") \
            from None
    sock.set_inheritable(True)
    return sock


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 HTTP/1.1 protocol, closing a connection whose next request's headers take over
    `header_timeout_s` seconds to arrive (counted from the connection, or from the end of the last response)."""

    def __init__(self, *args, header_timeout_s, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_deadline = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._await_request()

    def on_response_complete(self):
        self._await_request()  # before uvicorn starts a pipelined request, which makes this deadline moot
        super().on_response_complete()

    def connection_lost(self, exc):
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _await_request(self):
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_overdue, self.cycle)

    def _headers_overdue(self, cycle):
        """Closes the connection unless a new request (a new request-response cycle) began since the deadline
        was set."""
        self._header_deadline = None
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()
