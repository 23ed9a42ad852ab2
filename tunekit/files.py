"""Safe writes of tunekit's directories: never half-written, never over the user's own files.

Every directory tunekit writes (a saved model, an export, an adapter, a backup, a TF Hub-format SavedModel)
holds a `tunekit.json` manifest (`write_manifest`): its `kind`, its `format_version`, a sha256 of every file
it holds (`files`) and a sha256 of the manifest's own content (`manifest_sha256`). A folder is tunekit's
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
# The newest format of each kind of folder (the one written and read). Formats without `manifest_sha256` (model
# and export 1-2, tflite, adapter and backup 1) are not read: their manifests cannot be checked.
FORMAT_VERSIONS = {"model": 3, "export": 3, "tflite": 2, "adapter": 2, "backup": 2, "backups": 2}
MANIFEST_CHECKSUM = "manifest_sha256"
STAGING_TOKEN = ".tunekit-staging.json"
_PARTIAL = ".partial-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class DamagedArtifactError(ValueError):
    """A saved directory whose files are missing, truncated or changed since they were written."""


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


def manifest_digest(manifest):
    """The sha256 of a manifest's content (every key but `manifest_sha256`), over its canonical JSON."""
    content = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_manifest(directory, manifest, *, files=None):
    """Writes `directory/tunekit.json` atomically: `manifest` (which needs `kind` and `format_version`) with
    `files`, a sha256 of every other file under `directory` (unless `files` is given), and `manifest_sha256`.

    Returns the manifest as written."""
    if not isinstance(manifest.get("kind"), str) or not _is_int(manifest.get("format_version")):
        raise TypeError("A tunekit manifest needs a str 'kind' and an int 'format_version'.")
    manifest = {**manifest, "files": file_checksums(directory) if files is None else dict(files)}
    manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
    partial = os.path.join(directory, f".{MARKER_FILE}.{os.getpid()}")
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=2)
    os.replace(partial, os.path.join(directory, MARKER_FILE))
    return manifest


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_manifest(directory, *, what="saved model", kinds=None, format_version=None, verify_files=True):
    """The checked `tunekit.json` of `directory` (see `write_manifest`).

    Args:
        directory: the folder.
        what: how messages name the folder ("saved model", "export", ...).
        kinds: the kinds the caller reads (None: any).
        format_version: the format the caller reads, or a dict of it by kind (e.g. `FORMAT_VERSIONS`); older
            formats (which lacked the manifest checksum) and newer ones are refused, naming the version. None:
            any positive int.
        verify_files: also check every listed file against its sha256.

    Raises:
        DamagedArtifactError: the manifest is missing, unreadable, edited since it was written (its checksum
            does not match), or a listed file is missing or changed.
        ValueError: another kind, or a format this tunekit does not read.
    """
    path = os.path.join(directory, MARKER_FILE)
    if not os.path.isfile(path):
        raise DamagedArtifactError(
            f"This {what} is damaged or not tunekit's: {MARKER_FILE} is missing from {directory!r}, so nothing "
            "says what the folder holds. Write it again with tunekit.")
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        if not isinstance(manifest, dict):
            raise ValueError(f"a JSON {type(manifest).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise DamagedArtifactError(
            f"This {what} is damaged: {MARKER_FILE} in {directory!r} cannot be read ({error}).") from None
    version, kind = manifest.get("format_version"), manifest.get("kind")
    if isinstance(format_version, dict):
        kinds = list(format_version) if kinds is None else kinds
        format_version = format_version.get(kind)
    if isinstance(kind, str) and kinds is not None and kind not in kinds:
        raise ValueError(f"{directory!r} holds a tunekit {kind!r} folder, not a {what} (a folder of kind "
                         f"{' or '.join(map(repr, kinds))}).")
    if _is_int(version) and format_version is not None and version > format_version:
        written_by = manifest.get("tunekit_version", "?")
        raise ValueError(
            f"{directory!r} was written in tunekit's format version {version} by tunekit {written_by}; this tunekit "
            f"({_tunekit_version()}) reads format versions up to {format_version}. Upgrade to read it: "
            f"pip install -U \"tunekit>={written_by if written_by != '?' else _tunekit_version()}\".")
    if manifest.get(MANIFEST_CHECKSUM) != manifest_digest(manifest):
        raise DamagedArtifactError(
            f"This {what} is damaged: {MARKER_FILE} in {directory!r} changed since tunekit wrote it (its "
            f"{MANIFEST_CHECKSUM} does not match its content: an edit, a flipped bit, or a file tunekit did not "
            "write). Write it again with tunekit.")
    if not _is_int(version) or version < 1 or (format_version is not None and version != format_version):
        raise ValueError(
            f"{directory!r} has format version {version!r}, which this tunekit ({_tunekit_version()}) does not read "
            f"(it reads format {format_version if format_version is not None else '1 or later'}). Write it again "
            "with this tunekit.")
    files = manifest.get("files")
    if not isinstance(kind, str):
        raise DamagedArtifactError(f"This {what} is damaged: {MARKER_FILE} in {directory!r} names no kind.")
    if not isinstance(files, dict) or not all(isinstance(key, str) and isinstance(value, str)
                                              for key, value in files.items()):
        raise DamagedArtifactError(f"This {what} is damaged: the 'files' of {MARKER_FILE} in {directory!r} are "
                                   "not a table of file checksums.")
    if verify_files:
        verify_checksums(directory, files, what=what)
    return manifest


def _tunekit_version():
    from tunekit import __version__

    return __version__


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
                            "manifest: write it with tunekit.files.write_manifest.")
        check_replaceable(target, kind)  # the target may have changed while we wrote
        if not os.path.lexists(target):
            os.rename(written, target)
        elif not _exchange(written, target):
            os.replace(target, os.path.join(staging, "previous"))
            os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def sha256_of_file(path):
    """The sha256 hex digest of a file's bytes."""
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
