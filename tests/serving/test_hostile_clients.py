"""Slow, abusive and broken clients over real HTTP and raw sockets: header and body deadlines, the connection
limit, huge and deeply nested bodies, repeated keys and inputs, bodies that are not UTF-8, and clients that leave
mid-body. Every wait is bounded."""

import json
import selectors
import socket
import threading
import time

import httpx
import pytest
from server_process import API_KEY, ServerProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}
HEADER_TIMEOUT_S, BODY_TIMEOUT_S, MAX_CONNECTIONS = 2.0, 3.0, 40
PREDICT = "/v1/models/sentiment:predict"


@pytest.fixture(scope="module")
def guarded_server(exports, tmp_path_factory):
    """One model with the default text limits (a body may reach ~7.7 MB), short deadlines and few connections."""
    process = ServerProcess([exports["v1"], "--name", "sentiment", "--header-timeout", str(HEADER_TIMEOUT_S),
                             "--body-timeout", str(BODY_TIMEOUT_S), "--max-connections", str(MAX_CONNECTIONS)],
                            tmp_path_factory.mktemp("guarded"), env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        process.wait_until("/v2/health/ready")
        yield process
    finally:
        process.stop()


def _connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _head(server, length):
    return (f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _wait_closed(sockets, timeout):
    """Reads every socket until the server closes it (EOF or reset), for at most `timeout` seconds; returns the
    sockets still open and everything each one received."""
    received = {sock: b"" for sock in sockets}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            received[key.fileobj] += data
            if not data:
                selector.unregister(key.fileobj)
    still_open = [key.fileobj for key in selector.get_map().values()]
    selector.close()
    return still_open, received


def _answer_when_free(server, timeout=20.0):
    """Polls the health check until the server answers 200 again (bounded); returns the status codes seen."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(server.url + "/v2/health/live", timeout=5).status_code
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"the server did not answer 200 within {timeout} s: {seen[-5:]}")


def _metric(text, name, **labels):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()))


def test_idle_and_half_sent_connections_are_closed_after_the_header_timeout(guarded_server):
    idle = [_connect(guarded_server) for _ in range(150)]
    half_sent = [_connect(guarded_server) for _ in range(150)]
    for sock in half_sent:
        sock.sendall(_head(guarded_server, 10)[:60])  # the request line and part of a header, then nothing
    started = time.monotonic()
    still_open, received = _wait_closed(idle + half_sent, timeout=HEADER_TIMEOUT_S + 15)
    elapsed = time.monotonic() - started
    for sock in idle + half_sent:
        sock.close()
    assert not still_open, f"{len(still_open)} of 300 connections still open after {elapsed:.1f} s"
    assert elapsed < HEADER_TIMEOUT_S + 10
    assert not any(received.values())  # closed without an answer: no request ever arrived
    _answer_when_free(guarded_server)
    assert httpx.post(guarded_server.url + PREDICT, headers=AUTH, json={"instances": ["good"]}).status_code == 200


def test_a_client_trickling_headers_is_cut_off(guarded_server):
    request = _head(guarded_server, 20) + b'{"instances": ["a"]}'
    sock = _connect(guarded_server)
    started, sent = time.monotonic(), 0
    try:
        while sent < len(request) and time.monotonic() - started < 10:  # 1 byte per 0.2 s: 45 s for the request
            sock.sendall(request[sent:sent + 1])
            sent += 1
            still_open, _ = _wait_closed([sock], timeout=0.2)
            if not still_open:
                break
    except OSError:  # reset while sending: closed too
        pass
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert sent < len(request) and elapsed < HEADER_TIMEOUT_S + 4, (sent, elapsed)


def test_a_slow_body_gets_408_and_the_connection_is_closed(guarded_server):
    body = b'{"instances": ["a fine film", "x"]}'
    sock = _connect(guarded_server)
    sock.sendall(_head(guarded_server, len(body)))
    started, answer = time.monotonic(), b""
    try:
        for byte in body:  # 1 byte per 0.25 s: 9 s for the body
            sock.sendall(bytes([byte]))
            still_open, received = _wait_closed([sock], timeout=0.25)
            answer += received[sock]
            if answer or not still_open:
                break
        still_open, received = _wait_closed([sock], timeout=5)
        answer += received[sock]
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert BODY_TIMEOUT_S - 0.5 < elapsed < BODY_TIMEOUT_S + 4
    assert b"did not arrive within" in answer and not still_open  # the server closed the connection


def test_connections_over_the_limit_get_503_at_once(guarded_server):
    _answer_when_free(guarded_server)
    held = [_connect(guarded_server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # let the server accept them all
        started = time.monotonic()
        over = httpx.get(guarded_server.url + "/v2/health/live", timeout=5)
        assert over.status_code == 503 and time.monotonic() - started < 2
    finally:
        for sock in held:
            sock.close()
    assert _answer_when_free(guarded_server)[-1] == 200


def test_huge_bodies_are_refused_before_parsing_and_do_not_stall_the_server(guarded_server):
    flood = b'{"instances": [' + b",".join([b'{"a":1}'] * 950_000) + b"]}"  # 7.6 MB: under the body limit
    assert len(flood) < 7_692_288
    latencies, answers, done = [], [], threading.Event()

    def watch_health():
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                started = time.monotonic()
                client.get(guarded_server.url + "/v2/health/live")
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

    def send_flood():
        answers.append(httpx.post(guarded_server.url + PREDICT, headers={**AUTH, "Content-Type": "application/json"},
                                  content=flood, timeout=60))

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    try:
        time.sleep(0.2)
        senders = [threading.Thread(target=send_flood) for _ in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=60)
    finally:
        done.set()
        watcher.join(timeout=30)
    assert len(latencies) > 5 and max(latencies) < 0.35, f"health checks took up to {max(latencies):.2f} s"
    assert [answer.status_code for answer in answers] == [413] * 4
    assert "at most 2048" in answers[0].json()["error"]  # refused for its values, before parsing


def test_deep_repeated_and_undecodable_bodies_get_400_naming_the_problem(guarded_server):
    infer = "/v2/models/sentiment/infer"
    text_input = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}
    cases = [
        (PREDICT, b"[" * 200_000 + b"]" * 200_000, "nested more than 32 levels"),
        (PREDICT, b'{"instances": ' + b"[" * 40 + b'"a"' + b"]" * 40 + b"}", "nested more than 32 levels"),
        (infer, json.dumps({"inputs": [text_input, {**text_input, "data": ["bad"]}]}).encode(),
         "inputs[1] repeats the input 'text'"),
        (PREDICT, b'{"instances": ["good"], "instances": ["bad"]}', "repeats the key 'instances'"),
        (PREDICT, b'{"instances": [{"text": "good", "text": "bad"}]}', "repeats the key 'text'"),
        (PREDICT, '{"instances": ["café"]}'.encode("latin-1"), "not valid UTF-8"),
        (PREDICT, b'{"instances": ["bad \\ud800"]}', "surrogate"),
        (infer, b'{"id": "\\udc00", "inputs": [' + json.dumps(text_input).encode() + b"]}", "surrogate"),
    ]
    with httpx.Client(base_url=guarded_server.url, headers={**AUTH, "Content-Type": "application/json"}) as client:
        before = client.get("/metrics").text
        for path, body, message in cases:
            answer = client.post(path, content=body)
            assert answer.status_code == 400 and message in answer.json()["error"], (body[:80], answer.text)
        after = client.get("/metrics").text
    assert _metric(after, "tunekit_requests_total", status="500") == _metric(before, "tunekit_requests_total",
                                                                            status="500")


def test_a_client_that_leaves_mid_body_is_counted_as_499_not_as_a_server_error(guarded_server):
    url = guarded_server.url + "/metrics"
    before = httpx.get(url).text
    for _ in range(3):
        sock = _connect(guarded_server)
        sock.sendall(_head(guarded_server, 1000) + b'{"instances": ["half a')
        time.sleep(0.1)
        sock.close()
    deadline, after = time.monotonic() + 10, before
    while time.monotonic() < deadline:
        after = httpx.get(url).text
        if _metric(after, "tunekit_requests_total", status="499") - _metric(before, "tunekit_requests_total",
                                                                          status="499") >= 3:
            break
        time.sleep(0.1)
    assert _metric(after, "tunekit_requests_total", route="/v1/models/{name}:predict", status="499") - _metric(
        before, "tunekit_requests_total", route="/v1/models/{name}:predict", status="499") == 3
    assert _metric(after, "tunekit_requests_total", status="500") == _metric(before, "tunekit_requests_total",
                                                                            status="500")
    log = guarded_server.log()
    assert "Traceback" not in log and "unhandled error" not in log
    access = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"route"' in line]
    assert sum(line["status"] == 499 for line in access) >= 3
