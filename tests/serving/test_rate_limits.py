"""Per-key rate limits: a token bucket per API key, shared by processes; 429 + Retry-After over real HTTP while
another key is unaffected; counted in /metrics; nonsense settings refused at start."""

import math
import multiprocessing
import re
import subprocess
import sys
import time

import httpx
import pytest
from server_process import API_KEY, OTHER_KEY, ServerProcess, free_port

from tunekit.serving.ratelimit import RateLimiter, parse_rate

RATE_PER_S, BURST = 2.0, 3


def test_parse_rate_per_second_and_per_minute():
    assert parse_rate("10/s") == 10.0 and parse_rate(" 600 / m ") == 10.0 and parse_rate("0.5/s") == 0.5
    for bad in ("0/s", "-1/s", "ten", "10", "10/h", "/s", ""):
        with pytest.raises(ValueError, match="N/s or N/m"):
            parse_rate(bad)


def test_buckets_are_per_key_and_refill_at_the_rate():
    limiter = RateLimiter(2.0, burst=3, keys=2)
    assert [limiter.acquire(0, now=10.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert limiter.acquire(1, now=10.0) == 0.0  # the other key keeps its own bucket
    assert limiter.acquire(0, now=10.25) == pytest.approx(0.25)  # half a token came back: half a token to go
    assert limiter.acquire(0, now=10.5) == 0.0
    assert limiter.acquire(0, now=1000.0) == 0.0 and limiter.acquire(0, now=1000.0) == 0.0  # full again, not more
    assert limiter.acquire(0, now=1000.0) == 0.0 and limiter.acquire(0, now=1000.0) > 0
    for bad in ({"rate": 0}, {"rate": -1.0}, {"rate": "10"}, {"rate": 1.0, "burst": 0}, {"rate": 1.0, "keys": 0}):
        with pytest.raises(ValueError):
            RateLimiter(**bad)


def _take_tokens(limiter, count, results):
    results.put(sum(limiter.acquire(0) == 0.0 for _ in range(count)))


def test_processes_spawned_with_one_limiter_share_its_buckets():
    limiter = RateLimiter(0.001, burst=10, keys=1)  # refills one token in 1000 s: only the burst is available
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_take_tokens, args=(limiter, 8, results)) for _ in range(2)]
    for process in processes:
        process.start()
    granted = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert sum(granted) == 10, granted  # 16 attempts in two processes, one bucket of 10


@pytest.fixture(scope="module")
def limited_server(exports, tmp_path_factory):
    """Two keys, each limited to 120 requests a minute (2/s) with bursts of 3."""
    process = ServerProcess([exports["v1"], "--name", "sentiment", "--rate-limit", "120/m", "--rate-burst",
                             str(BURST)], tmp_path_factory.mktemp("limited"),
                            env={"TUNEKIT_API_KEYS": f"{API_KEY},{OTHER_KEY}"})
    try:
        process.wait_until("/v2/health/ready")
        yield process
    finally:
        process.stop()


def _metric(text, name, **labels):
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}{{{wanted}}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_key_over_its_limit_gets_429_while_another_key_is_served(limited_server):
    url = limited_server.url
    greedy, polite = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {OTHER_KEY}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.monotonic()
        answers = [client.get("/v1/models/sentiment/labels", headers=greedy) for _ in range(12)]
        elapsed = time.monotonic() - started
        statuses = [answer.status_code for answer in answers]
        granted = statuses.count(200)
        assert set(statuses) <= {200, 429}, statuses
        # The burst, plus whatever refilled while the 12 requests ran.
        assert BURST <= granted <= BURST + math.ceil(elapsed * RATE_PER_S), (statuses, elapsed)
        assert statuses[:BURST] == [200] * BURST
        refused = [answer for answer in answers if answer.status_code == 429]
        assert refused
        for answer in refused:
            assert answer.headers["retry-after"] == "1"  # < 0.5 s until the next token, rounded up to 1 s
            assert "Too many requests for this API key" in answer.json()["error"]
            assert API_KEY not in answer.text

        # Meanwhile the other key is served: predictions and metadata, all 200.
        for _ in range(BURST):
            answer = client.post("/v1/models/sentiment:predict", headers=polite, json={"instances": ["A fine film."]})
            assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in ("negative", "positive")

        time.sleep(1.0 / RATE_PER_S + 0.1)  # one token back
        assert client.get("/v1/models/sentiment/labels", headers=greedy).status_code == 200

        metrics = client.get("/metrics").text  # open, and not rate-limited
    expected_refusals = len(refused)
    assert _metric(metrics, "tunekit_rate_limited_requests_total", api_key="1") == expected_refusals
    assert _metric(metrics, "tunekit_rate_limited_requests_total", api_key="2") == 0
    assert _metric(metrics, "tunekit_requests_total", method="GET", route="/v1/models/{name}/labels",
                   status="429") == expected_refusals
    assert API_KEY not in metrics and OTHER_KEY not in metrics


def test_wrong_keys_are_401_before_any_rate_limit(limited_server):
    for _ in range(BURST + 2):
        answer = httpx.get(limited_server.url + "/v1/models/sentiment", headers={"Authorization": "Bearer nope"})
        assert answer.status_code == 401


@pytest.mark.parametrize("flags, message", [
    (["--rate-limit", "0/s"], "--rate-limit: invalid rate '0/s'"),
    (["--rate-limit=-5/s"], "--rate-limit: invalid rate '-5/s'"),
    (["--rate-limit", "ten"], "--rate-limit: invalid rate 'ten'"),
    (["--rate-limit", "10/h"], "--rate-limit: invalid rate '10/h'"),
    (["--rate-limit", "10/s", "--rate-burst", "0"], "--rate-burst: invalid burst '0'"),
    (["--rate-limit", "10/s", "--rate-burst", "-3"], "--rate-burst: invalid burst '-3'"),
    (["--rate-limit", "10/s", "--rate-burst", "many"], "--rate-burst: invalid burst 'many'"),
    (["--rate-burst", "5"], "--rate-burst needs --rate-limit"),
])
def test_nonsense_rate_settings_stop_the_server_at_start_with_exit_2(exports, flags, message):
    result = subprocess.run([sys.executable, "-m", "tunekit.serving", exports["v1"], "--port", str(free_port()),
                             *flags], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TUNEKIT_OFFLINE": "1", "TUNEKIT_API_KEYS": API_KEY})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
