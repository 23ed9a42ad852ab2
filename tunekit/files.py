"""Safe writes of tunekit's directories: never half-written, never over the user's own files.

Every directory tunekit writes (a saved model, an export, an adapter, a backup, a TF Hub-format SavedModel)
holds a `tunekit.json` marker. `write_atomically` writes a new directory beside the target and swaps it in:

- a reader always finds the old or the new directory at the path, never nothing (on Linux the two are
  exchanged in one `renameat2(RENAME_EXCHANGE)` call);
- an existing path is replaced only when it is a directory tunekit wrote (it holds `tunekit.json`) or an
  empty directory: a folder of the user's files, a regular file, the current directory or one of its
  parents is refused with a `ValueError` before any work is done;
- leftovers of writes that were killed (hidden `.NAME.partial-PID-*` folders) are removed by the next write
  to the same path.

Example:

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> def write(path):
...     os.makedirs(path)
...     with open(os.path.join(path, "weights.txt"), "w") as file:
...         file.write("1 2 3")
>>> target = write_atomically(os.path.join(root, "model"), write, kind="example")
>>> sorted(os.listdir(target))
['tunekit.json', 'weights.txt']
>>> write_atomically(root, write)
Traceback (most recent call last):
...
ValueError: ...
"""

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile

MARKER_FILE = "tunekit.json"
_PARTIAL = ".partial-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def is_tunekit_directory(path):
    """True when `path` is a directory that tunekit wrote (it holds a `tunekit.json` object)."""
    marker = os.path.join(path, MARKER_FILE)
    if not os.path.isdir(path) or os.path.islink(path) or not os.path.isfile(marker):
        return False
    try:
        with open(marker, encoding="utf-8") as file:
            return isinstance(json.load(file), dict)
    except (OSError, ValueError):
        # A damaged marker still says the folder is ours (a save that is being replaced may have been corrupted).
        return True


def check_replaceable(target):
    """Raises `ValueError` unless `target` is absent, an empty directory, or a directory tunekit wrote."""
    target = os.path.abspath(os.fspath(target))
    cwd = os.path.abspath(os.getcwd())
    if target == cwd or cwd.startswith(target.rstrip(os.sep) + os.sep):
        raise ValueError(
            f"Refusing to write into {target!r}: it is the current directory or one of its parents, and replacing "
            "it would delete everything in it. Give a new folder name, e.g. 'my_model'."
        )
    if not os.path.lexists(target):
        return
    if os.path.islink(target) or not os.path.isdir(target):
        raise ValueError(
            f"Refusing to replace {target!r}: it is a file, not a folder tunekit wrote. tunekit saves and exports to "
            "folders; choose a path that does not exist yet (or delete that file yourself)."
        )
    if os.listdir(target) and not is_tunekit_directory(target):
        entries = sorted(os.listdir(target))
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"Refusing to replace {target!r}: the folder holds files that tunekit did not write ({shown}). tunekit "
            f"only replaces folders it wrote itself (they hold {MARKER_FILE}). Choose a new path, e.g. "
            f"{os.path.join(target, 'model')!r}, or move your files away."
        )


def _exchange(first, second):
    """Atomically swaps two paths (Linux `renameat2`); False where the system or filesystem cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), first)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(target):
    """Removes the staging folders of interrupted writes to `target` whose process is gone.

    A write that died between its two renames (systems without an atomic exchange) left the previous
    directory inside its staging folder; if `target` is missing, that directory is put back first.
    """
    parent, name = os.path.split(os.path.abspath(target))
    prefix = f".{name}{_PARTIAL}"
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            continue  # another process is writing right now
        staging = os.path.join(parent, entry)
        previous = os.path.join(staging, "previous")
        if not os.path.lexists(target) and os.path.isdir(previous):
            os.replace(previous, target)
        shutil.rmtree(staging, ignore_errors=True)


def _write_marker(directory, kind):
    marker = os.path.join(directory, MARKER_FILE)
    if not os.path.exists(marker):
        with open(marker, "w", encoding="utf-8") as file:
            json.dump({"kind": kind}, file, indent=2)


def write_atomically(target, write, *, kind="artifact"):
    """Calls `write(temporary_path)`, which must create a directory there, then swaps it onto `target`.

    Args:
        target: the folder to create or replace (see the module docstring for what may be replaced).
        write: a function that creates the directory it is given and fills it.
        kind: what is written ("model", "export", ...), recorded in `tunekit.json` unless `write` wrote one.

    Returns:
        The absolute path of `target`.

    Raises:
        ValueError: `target` is the user's folder or file, or the current directory (before `write` runs).
    """
    target = os.path.abspath(os.fspath(target))
    check_replaceable(target)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    remove_stale_partials(target)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{name}{_PARTIAL}{os.getpid()}-")
    try:
        written = os.path.join(staging, "new")
        write(written)
        if not os.path.isdir(written):
            raise TypeError("write_atomically's write function must create a directory at the path it is given.")
        _write_marker(written, kind)
        check_replaceable(target)  # the target may have changed while we wrote
        if not os.path.lexists(target):
            os.rename(written, target)
        elif not _exchange(written, target):
            os.replace(target, os.path.join(staging, "previous"))
            os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(directory, *, exclude=(MARKER_FILE,)):
    """`{relative path: sha256 hex}` of every file under `directory` (except `exclude`), for damage checks."""
    checksums = {}
    for root, _, files in os.walk(directory):
        for file_name in sorted(files):
            path = os.path.join(root, file_name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if relative in exclude:
                continue
            checksums[relative] = sha256_of_file(path)
    return dict(sorted(checksums.items()))


class DamagedArtifactError(ValueError):
    """A saved directory whose files are missing, truncated or changed since they were written."""


def verify_checksums(directory, checksums, *, what="saved model"):
    """Raises `DamagedArtifactError` naming the first file under `directory` that is missing or changed."""
    for relative, expected in checksums.items():
        path = os.path.join(directory, *relative.split("/"))
        if not os.path.isfile(path):
            raise DamagedArtifactError(f"This {what} is damaged: {relative} is missing from {directory!r}.")
        if sha256_of_file(path) != expected:
            raise DamagedArtifactError(
                f"This {what} is damaged: {relative} in {directory!r} changed since it was written (checksum "
                "mismatch; a truncated copy or an interrupted transfer). Save or copy it again."
            )
