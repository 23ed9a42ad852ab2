"""Hot model versions over real HTTP: a version copied in file by file is ignored until complete, then loaded,
warmed up and made the default under load with no failed request; the old version unloads; a damaged version is
logged and ignored; a deleted folder of the only version keeps serving."""

import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
from server_process import API_KEY, LABELS_V1, LABELS_V2, ServerProcess, free_port

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PREDICT = "/v1/models/sentiment:predict"


def _states(url):
    status = httpx.get(url + "/v1/models/sentiment", headers=AUTH, timeout=10).json()["model_version_status"]
    return {entry["version"]: entry["state"] for entry in status}


def _wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture()
def watched(exports, tmp_path):
    """A base folder holding version 1 only, served with --poll-seconds 0.3."""
    base = tmp_path / "sentiment"
    shutil.copytree(exports["v1"], base / "1")
    process = ServerProcess([str(base), "--name", "sentiment", "--poll-seconds", "0.3", "--max-wait-ms", "5"],
                            tmp_path, env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        process.wait_until("/v2/health/ready")
        yield process, base
    finally:
        process.stop()


class Load:
    """Clients that predict in a loop (bounded: they stop when told, or after `limit_s`), recording each answer."""

    def __init__(self, url, clients=4, limit_s=240.0):
        self.url, self.answers, self.stop = url, [], threading.Event()
        self.deadline = time.monotonic() + limit_s
        self.threads = [threading.Thread(target=self._client, args=(index,)) for index in range(clients)]
        for thread in self.threads:
            thread.start()

    def _client(self, index):
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=60) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                try:
                    answer = client.post(PREDICT, json={"instances": [f"A fine film {index}."]})
                    label = answer.json()["predictions"][0]["label"] if answer.status_code == 200 else answer.text
                    self.answers.append((index, answer.status_code, label))
                except httpx.TransportError as error:
                    self.answers.append((index, None, repr(error)))

    def labels_seen(self):
        return {label for _, status, label in self.answers if status == 200}

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)
        return self.answers


def test_a_new_version_copied_file_by_file_switches_under_load_without_a_failed_request(watched, exports):
    server, base = watched
    load = Load(server.url)
    try:
        assert _wait_for(lambda: len(load.answers) >= 8)
        # Copy version 2 file by file, its tunekit.json first: a half-written version that must not be served.
        source, target = exports["v2"], base / "2"
        files = sorted(os.path.relpath(os.path.join(root, name), source)
                       for root, _, names in os.walk(source) for name in names)
        files.remove("tunekit.json")
        for index, relative in enumerate(["tunekit.json", *files]):
            os.makedirs(target / os.path.dirname(relative), exist_ok=True)
            shutil.copy2(os.path.join(source, relative), target / relative)
            if index == len(files) // 2:  # half copied: seen, logged, not served
                assert _wait_for(lambda: "version 2 in" in server.log() and "incomplete or damaged" in server.log())
                time.sleep(1.0)  # more polls
                assert _states(server.url) == {"1": "AVAILABLE"}
        assert _wait_for(lambda: set(LABELS_V2) & load.labels_seen()), server.log()[-3000:]
        assert _wait_for(lambda: _states(server.url) == {"1": "END", "2": "AVAILABLE"}), _states(server.url)
        switched = len(load.answers)
        assert _wait_for(lambda: len(load.answers) >= switched + 8)
    finally:
        answers = load.finish()
    statuses = [status for _, status, _ in answers]
    assert statuses.count(200) == len(answers), [answer for answer in answers if answer[1] != 200][:5]
    for client in range(4):  # each client sees version 1, then version 2, never back
        labels = [label for index, _, label in answers if index == client]
        first_new = next(i for i, label in enumerate(labels) if label in LABELS_V2)
        assert set(labels[:first_new]) <= set(LABELS_V1) and set(labels[first_new:]) <= set(LABELS_V2)
    log = server.log()
    assert "model 'sentiment' version 2 is now the default" in log and "unloaded model 'sentiment' version 1" in log
    pinned = httpx.post(server.url + "/v1/models/sentiment/versions/1:predict", headers=AUTH,
                        json={"instances": ["x"]})
    assert pinned.status_code == 404  # unloaded


def test_a_damaged_version_is_ignored_and_a_deleted_only_version_keeps_serving(watched, exports, tmp_path):
    server, base = watched
    damaged = tmp_path / "staging" / "3"
    shutil.copytree(exports["v2"], damaged)
    variables = damaged / "variables" / "variables.data-00000-of-00001"
    data = bytearray(variables.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum no longer matches
    variables.write_bytes(bytes(data))
    os.rename(damaged, base / "3")  # arrives whole, but corrupted
    assert _wait_for(lambda: "model 'sentiment' version 3 in" in server.log())
    time.sleep(1.0)  # more polls: logged once, still ignored
    assert server.log().count("model 'sentiment' version 3 in") == 1
    assert _states(server.url) == {"1": "AVAILABLE"}
    answer = httpx.post(server.url + PREDICT, headers=AUTH, json={"instances": ["A fine film."]})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in LABELS_V1

    shutil.rmtree(base / "1")
    assert _wait_for(lambda: "it is the only version" in server.log())
    answer = httpx.post(server.url + PREDICT, headers=AUTH, json={"instances": ["A fine film."]})
    assert answer.status_code == 200 and _states(server.url) == {"1": "AVAILABLE"}


def test_deleting_the_default_version_folder_falls_back_to_the_previous_version(exports, tmp_path):
    base = tmp_path / "sentiment"
    shutil.copytree(exports["v1"], base / "1")
    shutil.copytree(exports["v2"], base / "2")
    server = ServerProcess([str(base), "--name", "sentiment", "--poll-seconds", "0.3"], tmp_path,
                           env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        server.wait_until("/v2/health/ready")
        answer = httpx.post(server.url + PREDICT, headers=AUTH, json={"instances": ["A fine film."]})
        assert answer.json()["predictions"][0]["label"] in LABELS_V2
        shutil.rmtree(base / "2")
        assert _wait_for(lambda: _states(server.url) == {"1": "AVAILABLE", "2": "END"}), _states(server.url)
        answer = httpx.post(server.url + PREDICT, headers=AUTH, json={"instances": ["A fine film."]})
        assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in LABELS_V1
        gone = httpx.post(server.url + "/v1/models/sentiment/versions/2:predict", headers=AUTH,
                          json={"instances": ["x"]})
        assert gone.status_code == 404
        assert "retiring model 'sentiment' version 2 (its folder was deleted)" in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_a_nonsense_poll_interval_stops_at_start_with_exit_2(exports, value):
    result = subprocess.run([sys.executable, "-m", "tunekit.serving", exports["sentiment"], f"--poll-seconds={value}",
                             "--port", str(free_port())], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TUNEKIT_OFFLINE": "1", "TUNEKIT_API_KEYS": API_KEY})
    assert result.returncode == 2 and "--poll-seconds: invalid poll interval" in result.stderr, result.stderr
