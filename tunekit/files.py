"""Safe writes of tunekit's directories: never half-written, never over the user's own files.

Every directory tunekit writes (a saved model, an export, an adapter, a backup, a backbone folder, a TF Hub-format
SavedModel) holds a `tunekit.json` manifest (`tunekit.formats`, which also holds the file names, the kinds, their
format versions and the one reader, `read_manifest`): its `kind`, its `format_version`, a sha256 of every file it
holds (`files`) and a sha256 of the manifest's own content (`manifest_sha256`). A folder is tunekit's
(`is_tunekit_directory`) only when all of these are present and agree: a user's `tunekit.json` (`# not json`,
`{"project": "mine"}`) or an edited one is not mistaken for it.

`write_atomically` writes a new directory beside the target and swaps it in:

- a reader always finds the old or the new directory at the path, never nothing (on Linux the two are
  exchanged in one `renameat2(RENAME_EXCHANGE)` call);
- an existing path is replaced only when it is an empty directory or a directory tunekit wrote, of the same kind,
  that holds no file its manifest does not list: a folder of the user's files, a file the user added to an
  earlier save (`MY_NOTES.md`), a saved model where an export is written, a regular file, the current directory
  or one of its parents is refused with a `ValueError` before any work is done;
- leftovers of writes that were killed (hidden `.NAME.partial-PID-*` folders holding tunekit's staging token)
  are removed by the next write to the same path; a folder that merely has such a name is left alone.

`~` is expanded in every path, as shells and other tools do.

Example:

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> def write(path):
...     os.makedirs(path)
...     with open(os.path.join(path, "weights.txt"), "w") as file:
...         file.write("1 2 3")
>>> target = write_atomically(os.path.join(root, "model"), write)
>>> sorted(os.listdir(target))
['tunekit.json', 'weights.txt']
>>> write_atomically(root, write)
Traceback (most recent call last):
...
ValueError: ...
"""

import ctypes
import errno
import json
import os
import shutil
import tempfile

# The manifest's format and its reader live in tunekit.formats; these names stay importable from here.
from tunekit.formats import (  # noqa: F401
    FORMAT_VERSIONS,
    MARKER_FILE,
    DamagedArtifactError,
    file_checksums,
    manifest_digest,
    read_manifest,
    sha256_of_file,
    verify_checksums,
    write_manifest,
)

STAGING_TOKEN = ".tunekit-staging.json"
_PARTIAL = ".partial-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def user_path(path):
    """The absolute path of `path` (a str or `os.PathLike`) with `~` expanded."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def folder_argument(directory, name, contents):
    """`directory`, the folder argument `name` (e.g. "log_dir"), as an absolute path (`~` expanded). Raises a
    `TypeError` for something that is not a path and a `ValueError` for a file, saying the folder is for `contents`
    (e.g. "the training logs (e.g. runs/my_run)")."""
    if isinstance(directory, bool) or not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path, got {type(directory).__name__}.")
    directory = user_path(directory)
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{name} {directory!r} is a file, not a folder: give a folder for {contents}, which tunekit "
                         "creates.")
    return directory


def tunekit_manifest(path):
    """The valid manifest of the folder `path` when every file it lists is present, else None."""
    if not os.path.isdir(path) or os.path.islink(path):
        return None
    try:
        manifest = read_manifest(path, verify_files=False)
    except ValueError:
        return None
    files = manifest["files"]
    if not all(os.path.isfile(os.path.join(path, *relative.split("/"))) for relative in files):
        return None
    return manifest


def is_tunekit_directory(path):
    """True when `path` is a directory that tunekit wrote: its `tunekit.json` is a valid manifest (kind, format
    version, a matching manifest checksum) and every file it lists is present."""
    return tunekit_manifest(path) is not None


def unlisted_files(path, manifest):
    """The files under `path` (relative, sorted) that neither `manifest` lists nor are its `tunekit.json`."""
    listed = set(manifest["files"]) | {MARKER_FILE}
    found = []
    for root, directories, files in os.walk(path):
        for name in files + [entry for entry in directories if os.path.islink(os.path.join(root, entry))]:
            relative = os.path.relpath(os.path.join(root, name), path).replace(os.sep, "/")
            if relative not in listed:
                found.append(relative)
    return sorted(found)


def _shown(names):
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def check_replaceable(target, kind=None):
    """Raises `ValueError` unless `target` is absent, an empty directory, or a directory tunekit wrote (of `kind`,
    when given: an export never replaces a saved model) that holds only the files its manifest lists;
    `PermissionError` when its folder cannot be written. Returns the absolute path."""
    target = user_path(target)
    cwd = os.path.abspath(os.getcwd())
    if target == cwd or cwd.startswith(target.rstrip(os.sep) + os.sep):
        raise ValueError(
            f"Refusing to write into {target!r}: it is the current directory or one of its parents, and replacing "
            "it would delete everything in it. Give a new folder name, e.g. 'my_model'."
        )
    check_writable(target)
    if not os.path.lexists(target):
        return target
    if os.path.islink(target) or not os.path.isdir(target):
        raise ValueError(
            f"Refusing to replace {target!r}: it is a file, not a folder tunekit wrote. tunekit saves and exports to "
            "folders; choose a path that does not exist yet (or delete that file yourself)."
        )
    entries = sorted(os.listdir(target))
    if not entries:
        return target
    manifest = tunekit_manifest(target)
    if manifest is None:
        mine = MARKER_FILE in entries
        raise ValueError(
            f"Refusing to replace {target!r}: the folder holds files that tunekit did not write ({_shown(entries)})"
            + (f"; its {MARKER_FILE} is not a manifest tunekit wrote (or was edited, or files it lists are gone)"
               if mine else "")
            + f". tunekit only replaces folders it wrote itself (with a valid {MARKER_FILE}). Choose a new path, "
            f"e.g. {os.path.join(target, 'model')!r}, or move your files away."
        )
    if kind is not None and manifest["kind"] != kind:
        raise ValueError(
            f"Refusing to replace {target!r}: it holds a tunekit {manifest['kind']}, and this writes a new {kind}; "
            f"replacing it would lose the {manifest['kind']}. Choose another path, e.g. {target + '_' + kind!r}."
        )
    extra = unlisted_files(target, manifest)
    if extra:
        raise ValueError(
            f"Refusing to replace {target!r}: it is an earlier tunekit {manifest['kind']} but also holds files "
            f"tunekit did not write ({_shown(extra)}), which replacing it would delete. Move them out of the "
            "folder, or choose another path."
        )
    return target


def check_writable(target):
    """Raises `PermissionError` naming the folder when `target` cannot be created or replaced by this user."""
    parent = os.path.dirname(target)
    while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Cannot write {target!r}: the folder {parent!r} is read-only for this user. Choose a folder you can "
            "write to (e.g. under your home folder), or make this one writable."
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


def _staging_of(staging, target):
    """True when `staging` is a staging folder that `write_atomically` made for `target` (it holds the token)."""
    if os.path.islink(staging) or not os.path.isdir(staging):
        return False
    try:
        with open(os.path.join(staging, STAGING_TOKEN), encoding="utf-8") as file:
            token = json.load(file)
    except (OSError, ValueError):
        return False
    return isinstance(token, dict) and token.get("target") == target


def remove_stale_partials(target):
    """Removes the staging folders of interrupted writes to `target` whose process is gone.

    Only folders that hold `write_atomically`'s staging token for `target` are touched: a user's folder that
    merely has such a name stays. A write that died between its two renames (systems without an atomic
    exchange) left the previous directory inside its staging folder; if `target` is missing, that directory is
    put back first.
    """
    target = user_path(target)
    parent, name = os.path.split(target)
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
        if not _staging_of(staging, target):
            continue
        previous = os.path.join(staging, "previous")
        if not os.path.lexists(target) and os.path.isdir(previous):
            os.replace(previous, target)
        shutil.rmtree(staging, ignore_errors=True)


def write_atomically(target, write, *, kind="artifact"):
    """Calls `write(temporary_path)`, which must create a directory there, then swaps it onto `target`.

    Args:
        target: the folder to create or replace (see the module docstring for what may be replaced).
        write: a function that creates the directory it is given and fills it; it may write the folder's
            manifest with `write_manifest` (last), else one of `kind` and format version 1 is written for it.
        kind: what is written ("model", "export", ...): an existing tunekit folder of another kind is not replaced,
            and the manifest written when `write` wrote none has this kind.

    Returns:
        The absolute path of `target`.

    Raises:
        ValueError: `target` is the user's folder or file, a tunekit folder of another kind, or the current
            directory (before `write` runs).
        PermissionError: the folder of `target` cannot be written (before `write` runs).
    """
    target = check_replaceable(target, kind)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    remove_stale_partials(target)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{name}{_PARTIAL}{os.getpid()}-")
    try:
        with open(os.path.join(staging, STAGING_TOKEN), "w", encoding="utf-8") as file:
            json.dump({"target": target, "pid": os.getpid()}, file)
        written = os.path.join(staging, "new")
        write(written)
        if not os.path.isdir(written):
            raise TypeError("write_atomically's write function must create a directory at the path it is given.")
        if not os.path.exists(os.path.join(written, MARKER_FILE)):
            write_manifest(written, {"kind": kind, "format_version": 1})
        elif not is_tunekit_directory(written):
            raise TypeError(f"The {MARKER_FILE} that write_atomically's write function wrote is not a tunekit "
                            "manifest: write it with tunekit.formats.write_manifest.")
        check_replaceable(target, kind)  # the target may have changed while we wrote
        if not os.path.lexists(target):
            os.rename(written, target)
        elif not _exchange(written, target):
            os.replace(target, os.path.join(staging, "previous"))
            os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
