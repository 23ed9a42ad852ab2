"""`tunekit serve --workers N` over real HTTP: requests answered by every worker, metrics summed exactly across
processes, a worker killed with SIGKILL replaced while the others keep answering, SIGTERM stops them all."""

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from server_process import API_KEY, ServerProcess, free_port

from tunekit.serving.cli import default_workers

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PREDICT = "/v1/models/sentiment:predict"


def _children(pid):
    """PIDs of the live (not zombie) child processes of `pid`, from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry))
    return children


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _worker_requests(metrics):
    """{pid: requests} from tunekit_worker_requests_total."""
    return {int(pid): float(value)
            for pid, value in re.findall(r'^tunekit_worker_requests_total\{worker_pid="(\d+)"\} (\S+)$', metrics, re.M)}


def _predictions_ok(metrics):
    match = re.search(r'^tunekit_requests_total\{method="POST",route="/v1/models/\{name\}:predict",status="200"\} '
                      r'(\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


def _predict_concurrently(url, count):
    async def send_all():
        # One connection per request, so that the kernel hands them to whichever worker accepts first.
        async def one(index):
            async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client:
                return await client.post(PREDICT, json={"instances": [f"A fine film, number {index}."]})

        return await asyncio.gather(*(one(index) for index in range(count)))

    return asyncio.run(send_all())


@pytest.fixture(scope="module")
def workers_server(exports, tmp_path_factory):
    process = ServerProcess([exports["v1"], "--name", "sentiment", "--workers", "2", "--max-wait-ms", "20",
                             "--graceful-timeout", "20"], tmp_path_factory.mktemp("workers"),
                            env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        process.wait_until("/v2/health/ready", timeout=240)
        yield process
    finally:
        process.stop()


def test_both_workers_answer_and_metrics_add_up_exactly(workers_server):
    url = workers_server.url
    before = httpx.get(url + "/metrics").text
    # Which worker accepts a connection is up to the kernel: send rounds of 40 until both have answered some.
    for rounds in range(1, 6):
        answers = _predict_concurrently(url, 40)
        assert [answer.status_code for answer in answers] == [200] * 40
        after = httpx.get(url + "/metrics").text
        served = {pid: count - _worker_requests(before).get(pid, 0) for pid, count in _worker_requests(after).items()}
        if len(served) == 2 and min(served.values()) > 0:
            break
    assert _predictions_ok(after) - _predictions_ok(before) == 40 * rounds  # summed over the two processes
    workers = set(_children(workers_server.process.pid))
    assert len(served) == 2 and set(served) <= workers, (served, workers)
    assert all(count > 0 for count in served.values()), served
    assert sum(served.values()) == 41 * rounds  # the predictions, and one /metrics request a round
    assert 'tunekit_model_ready{model="sentiment",version="1"} 1.0' in after


def test_a_killed_worker_is_replaced_and_the_survivor_keeps_answering(workers_server):
    url = workers_server.url
    before = httpx.get(url + "/metrics").text
    victim, survivor = sorted(_worker_requests(before))  # the two workers that answered the first test
    os.kill(victim, signal.SIGKILL)
    answers = _predict_concurrently(url, 20)  # while the replacement loads, the survivor takes every connection
    assert [answer.status_code for answer in answers] == [200] * 20
    deadline, replacement = time.monotonic() + 180, None
    while replacement is None and time.monotonic() < deadline:
        answers = _predict_concurrently(url, 8)
        assert [answer.status_code for answer in answers] == [200] * 8
        metrics = httpx.get(url + "/metrics").text
        replacement = next((pid for pid in _worker_requests(metrics) if pid not in (victim, survivor)), None)
        time.sleep(0.5)
    assert replacement is not None, workers_server.log()[-3000:]
    assert not _alive(victim) and set(_children(workers_server.process.pid)) >= {survivor, replacement}
    # The dead worker's counts stay in the sums; its gauges (queue depth, readiness) are dropped.
    assert _worker_requests(metrics)[victim] >= _worker_requests(before)[victim]
    assert _predictions_ok(metrics) >= _predictions_ok(before) + 20
    assert "died" in workers_server.log()


def test_sigterm_finishes_in_flight_requests_and_stops_every_worker(workers_server):
    workers = _children(workers_server.process.pid)
    assert len(workers) >= 2
    results = []

    def post():
        results.append(httpx.post(workers_server.url + PREDICT, headers=AUTH, json={"instances": ["Fine."] * 8},
                                  timeout=60))

    in_flight = [threading.Thread(target=post) for _ in range(4)]
    for thread in in_flight:
        thread.start()
    time.sleep(0.05)
    workers_server.process.send_signal(signal.SIGTERM)
    for thread in in_flight:
        thread.join(timeout=60)
    assert workers_server.process.wait(timeout=60) == 0, workers_server.log()[-3000:]
    assert [result.status_code for result in results] == [200] * 4
    # Children the supervisor does not wait for (multiprocessing's resource tracker) exit once its pipe closes, a
    # moment after the server: allow them a few seconds.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), [open(f"/proc/{pid}/cmdline", "rb").read()[:200]
                                                     for pid in workers if _alive(pid)]
    with pytest.raises(httpx.TransportError):
        httpx.get(workers_server.url + "/v2/health/live", timeout=2)


def test_the_rate_limit_holds_for_the_whole_server_not_per_worker(exports, tmp_path):
    process = ServerProcess([exports["v1"], "--name", "sentiment", "--workers", "2", "--rate-limit", "1/m",
                             "--rate-burst", "10"], tmp_path, env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        process.wait_until("/v2/health/ready", timeout=240)

        async def send_all():
            async def one():  # a connection each, so that both workers may take some
                async with httpx.AsyncClient(base_url=process.url, headers=AUTH, timeout=60) as client:
                    return await client.get("/v1/models/sentiment/labels")

            return await asyncio.gather(*(one() for _ in range(30)))

        # Which worker accepts a connection is up to the kernel: one worker may take a whole round, so send rounds
        # until both have answered some (the bucket of 10 is spent in the first round; every later request is 429).
        before = httpx.get(process.url + "/metrics").text
        statuses, rounds = [], 0
        while rounds < 10:
            statuses += [answer.status_code for answer in asyncio.run(send_all())]
            rounds += 1
            metrics = httpx.get(process.url + "/metrics").text
            taken = [count - _worker_requests(before).get(pid, 0) for pid, count in _worker_requests(metrics).items()]
            if len(taken) == 2 and min(taken) > 0:
                break
    finally:
        process.stop()
    sent = 30 * rounds
    assert sorted(statuses) == [200] * 10 + [429] * (sent - 10)  # one bucket of 10 (1/min refills nothing meanwhile)
    assert re.search(rf'^tunekit_rate_limited_requests_total\{{api_key="1"\}} {sent - 10}\.0$', metrics, re.M)
    # Both workers took some: with a bucket per process, more than 10 would have passed.
    assert len(taken) == 2 and min(taken) > 0 and sum(taken) == sent + rounds, taken


def test_a_worker_that_cannot_load_its_model_stops_the_server_with_exit_1(exports, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(exports["v1"], damaged)
    (damaged / "saved_model.pb").write_bytes(b"not a SavedModel")
    result = subprocess.run([sys.executable, "-m", "tunekit.serving", str(damaged), "--workers", "2", "--port",
                             str(free_port())], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TUNEKIT_API_KEYS": API_KEY})
    assert result.returncode == 1, result.stderr[-3000:]
    assert "a worker failed to start" in result.stderr


def test_default_workers_follow_the_cores_and_the_artifact_type(exports, tmp_path):
    for name in ("tunekit.json", "model.tflite"):
        (tmp_path / name).write_bytes(b"")
    assert [default_workers([exports["v1"]], cores=cores) for cores in (1, 2, 4, 8, 16)] == [1, 1, 1, 2, 4]
    assert [default_workers([str(tmp_path)], cores=cores) for cores in (1, 2, 4, 8)] == [1, 1, 2, 4]
    assert default_workers([str(tmp_path), exports["v1"]], cores=8) == 2  # a SavedModel among them: its rule


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_nonsense_worker_count_stops_at_start_with_exit_2(exports, value):
    result = subprocess.run([sys.executable, "-m", "tunekit.serving", exports["v1"], f"--workers={value}"],
                            capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TUNEKIT_OFFLINE": "1", "TUNEKIT_API_KEYS": API_KEY})
    assert result.returncode == 2 and "--workers: invalid number of workers" in result.stderr, result.stderr
