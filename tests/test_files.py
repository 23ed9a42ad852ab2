"""`tunekit.files.write_atomically`: never deletes the user's files, never leaves a path empty or half-written."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tunekit.files import MARKER_FILE, STAGING_TOKEN, is_tunekit_directory, sha256_of_file, write_atomically


def _writer(content):
    def write(path):
        os.makedirs(path)
        with open(os.path.join(path, "data.txt"), "w") as file:
            file.write(content)
    return write


def _hashes(root):
    """{relative path: sha256 (files) or "dir"} of everything under `root`, to prove nothing changed."""
    found = {}
    for folder, directories, files in os.walk(root):
        for name in directories:
            found[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            found[os.path.relpath(os.path.join(folder, name), root)] = sha256_of_file(os.path.join(folder, name))
    return found


def _leftover(parent, name, target):
    """A staging folder that a killed `write_atomically` to `target` left behind (with its staging token)."""
    os.makedirs(parent / name / "new")
    (parent / name / STAGING_TOKEN).write_text(json.dumps({"target": str(target)}))


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
    manifest = json.loads((tmp_path / "model" / MARKER_FILE).read_text())
    assert (manifest["kind"], manifest["format_version"], list(manifest["files"])) == ("model", 1, ["data.txt"])
    with pytest.raises(ValueError, match="it holds a tunekit model, and this writes a new export"):
        write_atomically(tmp_path / "model", _writer("new"), kind="export")
    write_atomically(tmp_path / "model", _writer("new"), kind="model")
    assert (tmp_path / "model" / "data.txt").read_text() == "new"
    (tmp_path / "empty").mkdir()
    write_atomically(tmp_path / "empty", _writer("e"))
    assert sorted(os.listdir(tmp_path)) == ["empty", "model"]


def test_leftovers_of_killed_writes_are_removed_and_a_lost_target_restored(tmp_path):
    write_atomically(tmp_path / "model", _writer("v1"))
    # A write killed before its swap, and one killed between the two renames of the non-atomic fallback.
    dead_pid = 2 ** 22 + 1  # above the default pid_max: no such process
    _leftover(tmp_path, f".model.partial-{dead_pid}-abc", tmp_path / "model")
    _leftover(tmp_path, f".other.partial-{dead_pid}-def", tmp_path / "model")
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


@pytest.mark.parametrize("marker", [
    "# not json",
    '{"project": "mine"}',
    '{"kind": "model", "format_version": 3, "files": {}}',  # looks like tunekit's, but has no manifest checksum
])
def test_a_folder_holding_a_user_tunekit_json_is_not_taken_for_tunekit_s(tmp_path, marker):
    project = tmp_path / "project"
    _user_folder(project)
    (project / MARKER_FILE).write_text(marker)
    before = _hashes(project)
    assert not is_tunekit_directory(project)
    with pytest.raises(ValueError, match=r"holds files that tunekit did not write \(data.csv, script.py, tunekit.json\)"):
        write_atomically(project, _writer("x"))
    assert _hashes(project) == before
    assert sorted(os.listdir(tmp_path)) == ["project"]


def test_an_edited_manifest_or_a_missing_listed_file_makes_the_folder_not_tunekit_s(tmp_path):
    write_atomically(tmp_path / "model", _writer("v1"), kind="model")
    marker = tmp_path / "model" / MARKER_FILE
    original = marker.read_text()
    marker.write_text(original.replace('"model"', '"modes"'))  # one edit: the manifest checksum no longer matches
    before = _hashes(tmp_path / "model")
    with pytest.raises(ValueError, match="not a manifest tunekit wrote"):
        write_atomically(tmp_path / "model", _writer("v2"))
    assert _hashes(tmp_path / "model") == before
    marker.write_text(original)
    os.remove(tmp_path / "model" / "data.txt")
    with pytest.raises(ValueError, match="files it lists are gone"):
        write_atomically(tmp_path / "model", _writer("v2"))
    assert os.listdir(tmp_path / "model") == [MARKER_FILE]


def test_a_file_the_user_added_to_an_earlier_save_is_never_deleted(tmp_path):
    write_atomically(tmp_path / "model", _writer("v1"), kind="model")
    (tmp_path / "model" / "MY_NOTES.md").write_text("trained on the March data")
    (tmp_path / "model" / "extra").mkdir()
    (tmp_path / "model" / "extra" / "plot.png").write_bytes(b"png")
    before = _hashes(tmp_path / "model")
    with pytest.raises(ValueError, match=r"earlier tunekit model but also holds files tunekit did not write "
                                         r"\(MY_NOTES.md, extra/plot.png\)"):
        write_atomically(tmp_path / "model", _writer("v2"), kind="model")
    assert _hashes(tmp_path / "model") == before
    os.remove(tmp_path / "model" / "MY_NOTES.md")
    shutil.rmtree(tmp_path / "model" / "extra")
    write_atomically(tmp_path / "model", _writer("v2"), kind="model")  # only tunekit's files: replaced
    assert (tmp_path / "model" / "data.txt").read_text() == "v2"


def test_a_user_folder_named_like_a_staging_folder_is_kept(tmp_path):
    write_atomically(tmp_path / "tgt", _writer("v1"))
    user = tmp_path / ".tgt.partial-99999999-keep"
    _user_folder(user)
    (user / "previous").mkdir()  # even one shaped like a staging folder, without tunekit's token
    before = _hashes(user)
    shutil.rmtree(tmp_path / "tgt")
    write_atomically(tmp_path / "tgt", _writer("v2"))
    assert _hashes(user) == before
    assert sorted(os.listdir(tmp_path)) == [user.name, "tgt"]


def test_a_tilde_path_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    target = write_atomically("~/models/x", _writer("v1"))
    assert target == str(tmp_path / "home" / "models" / "x")
    assert sorted(os.listdir(tmp_path)) == ["home"]  # no folder literally named "~"


def test_a_read_only_folder_is_named_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes into any folder with mode 555; an immutable folder is read-only to it
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available to make a folder read-only for root")
    else:
        locked.chmod(0o555)
    calls = []
    try:
        with pytest.raises(PermissionError, match=f"Cannot write {str(locked / 'model')!r}: the folder "
                                                  f"{str(locked)!r} is read-only for this user"):
            write_atomically(locked / "model", lambda path: calls.append(path))
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o755)
    assert calls == [] and os.listdir(locked) == []
