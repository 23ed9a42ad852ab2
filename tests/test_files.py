"""`tunekit.files.write_atomically`: never deletes the user's files, never leaves a path empty or half-written."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tunekit.files import MARKER_FILE, write_atomically


def _writer(content):
    def write(path):
        os.makedirs(path)
        with open(os.path.join(path, "data.txt"), "w") as file:
            file.write(content)
    return write


def _user_folder(path):
    path.mkdir()
    (path / "script.py").write_text("print('mine')")
    (path / "data.csv").write_text("text,label\n")
    return sorted(os.listdir(path))


def test_refuses_the_current_directory_and_its_parents(tmp_path, monkeypatch):
    before = _user_folder(tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")
    for target in (".", "..", str(tmp_path)):
        with pytest.raises(ValueError, match="current directory or one of its parents"):
            write_atomically(target, _writer("x"))
    assert sorted(os.listdir(tmp_path / "project")) == before


def test_refuses_a_folder_of_user_files_and_a_regular_file(tmp_path):
    before = _user_folder(tmp_path / "some_dir")
    with pytest.raises(ValueError, match=r"holds files that tunekit did not write \(data.csv, script.py\)"):
        write_atomically(tmp_path / "some_dir", _writer("x"))
    assert sorted(os.listdir(tmp_path / "some_dir")) == before
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(ValueError, match="it is a file"):
        write_atomically(tmp_path / "notes.txt", _writer("x"))
    assert (tmp_path / "notes.txt").read_text() == "my notes"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "some_dir"]  # nothing written beside them


def test_replaces_its_own_folder_and_an_empty_one(tmp_path):
    write_atomically(tmp_path / "model", _writer("old"), kind="model")
    assert json.loads((tmp_path / "model" / MARKER_FILE).read_text()) == {"kind": "model"}
    write_atomically(tmp_path / "model", _writer("new"))
    assert (tmp_path / "model" / "data.txt").read_text() == "new"
    (tmp_path / "empty").mkdir()
    write_atomically(tmp_path / "empty", _writer("e"))
    assert sorted(os.listdir(tmp_path)) == ["empty", "model"]


def test_leftovers_of_killed_writes_are_removed_and_a_lost_target_restored(tmp_path):
    write_atomically(tmp_path / "model", _writer("v1"))
    # A write killed before its swap, and one killed between the two renames of the non-atomic fallback.
    dead_pid = 2 ** 22 + 1  # above the default pid_max: no such process
    (tmp_path / f".model.partial-{dead_pid}-abc" / "new").mkdir(parents=True)
    os.makedirs(tmp_path / f".other.partial-{dead_pid}-def")
    os.rename(tmp_path / "model", tmp_path / f".other.partial-{dead_pid}-def" / "previous")
    os.rename(tmp_path / f".other.partial-{dead_pid}-def", tmp_path / f".model.partial-{dead_pid}-def")
    write_atomically(tmp_path / "sibling", _writer("s"))  # writes to other paths leave them alone
    assert not (tmp_path / "model").exists()
    write_atomically(tmp_path / "model", _writer("v2"))
    assert sorted(os.listdir(tmp_path)) == ["model", "sibling"]
    assert (tmp_path / "model" / "data.txt").read_text() == "v2"


_SAVE_LOOP = """
import os, sys
from tunekit.files import write_atomically
target = sys.argv[1]
version = 0
while True:
    version += 1
    def write(path, version=version):
        os.makedirs(path)
        for i in range(20):
            with open(os.path.join(path, f"part{i}.txt"), "w") as file:
                file.write(str(version) * 50000)
        with open(os.path.join(path, "complete.txt"), "w") as file:
            file.write(str(version))
    write_atomically(target, write)
"""


def test_the_path_never_disappears_and_stays_complete_when_a_writer_is_killed(tmp_path):
    target = tmp_path / "model"
    write_atomically(target, _writer("first"))
    child = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(target)])
    checks = 0
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert target.is_dir(), "the target vanished during a replacement"
            checks += 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    names = set(os.listdir(target))
    assert names in ({"data.txt", MARKER_FILE}, {f"part{i}.txt" for i in range(20)} | {"complete.txt", MARKER_FILE})
    assert checks > 1000
    write_atomically(target, _writer("after the kill"))
    assert sorted(os.listdir(tmp_path)) == ["model"]  # the killed writer's staging folder is gone
