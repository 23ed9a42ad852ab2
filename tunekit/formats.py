"""tunekit's on-disk formats: file names, the kinds of folder, their format versions, and the one manifest reader.

This module imports no TensorFlow or Keras, so any tool can check a folder cheaply.

Every folder tunekit writes holds a marker, `tunekit.json` (`MARKER_FILE`), its manifest:

- `kind`: what the folder is (`KINDS`: a saved model, an export, a LiteRT artifact, an adapter, a training backup
  and the folder of backups, a checkpoint folder, a log folder, a backbone folder);
- `format_version`: the layout of that kind (`FORMAT_VERSIONS`), raised whenever a reader of the old layout would
  misread the new one;
- `tunekit_version`: the tunekit that wrote it, named when a newer format is refused;
- `files`: a sha256 of every file it holds, and `manifest_sha256`, a sha256 of the manifest's own content (so an
  edited label name, step or alpha is caught, and a user's own `tunekit.json` is not mistaken for tunekit's);
- the kind's own keys (a model's task, an adapter's base and LoRA settings, a backup's step...).

`write_manifest` writes it; `read_manifest` is the one reader every kind goes through. It refuses, naming the
folder: a missing or unreadable marker, one that is not tunekit's or of an unknown kind, a folder of another kind
than the caller reads, a newer `format_version` (naming the version found, the version this tunekit reads and
the tunekit that wrote it: `NewerFormatError`), an edited manifest, an older format, and a missing or changed file.

Example:

>>> import json, os, tempfile
>>> folder = tempfile.mkdtemp()
>>> manifest = write_manifest(folder, {"kind": "checkpoints", "format_version": FORMAT_VERSIONS["checkpoints"]},
...                           files={})
>>> read_manifest(folder, "checkpoints")["format_version"]
1
>>> read_manifest(folder, "model")
Traceback (most recent call last):
...
ValueError: ... holds a tunekit checkpoint folder (kind 'checkpoints'), not a saved model. ...
>>> manifest.update(format_version=99, tunekit_version="9.1.0")
>>> manifest["manifest_sha256"] = manifest_digest(manifest)
>>> with open(os.path.join(folder, MARKER_FILE), "w") as file:
...     json.dump(manifest, file)
>>> read_manifest(folder, "checkpoints")
Traceback (most recent call last):
...
tunekit.formats.NewerFormatError: ... has format version 99, written by tunekit 9.1.0; ... up to 1. ...: pip install -U "tunekit>=9.1.0".
"""

import dataclasses
import hashlib
import json
import os
import re

MARKER_FILE = "tunekit.json"  # the manifest in every folder tunekit writes
BACKBONE_INFO_FILE = "backbone.json"  # a backbone folder's default pooling and source (read by tunekit 0.1 too)
MODEL_FILE = "model.keras"  # a saved model's architecture and weights
SAVED_MODEL_FILE = "saved_model.pb"  # an export's TF SavedModel graph
TFLITE_FILE = "model.tflite"  # a LiteRT artifact's model
ADAPTER_WEIGHTS_FILE = "adapter.npz"  # an adapter's LoRA factors and head weights
BACKUP_VARIABLES_FILE = "variables.npz"  # a training backup's model, optimizer and metric variables
# The names of the raw-string inputs of models, exports and servers: the text, and the second text of a pair.
TEXT_INPUT_NAMES = ("text", "text_pair")
MANIFEST_CHECKSUM = "manifest_sha256"
TUNEKIT_VERSION_KEY = "tunekit_version"


class DamagedArtifactError(ValueError):
    """A saved directory whose files are missing, truncated or changed since they were written."""


class NewerFormatError(ValueError):
    """A folder written in a newer format than this tunekit reads: the message names the upgrade."""


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of folder tunekit writes.

    Attributes:
        name: its `kind` in the manifest.
        format_version: the format written and read (older formats lack `manifest_sha256`, or were laid out
            otherwise, and are not read).
        what: how messages name it ("saved model").
        written_by: what writes it, for the messages ("tunekit.save_model or Trainer.save").
    """

    name: str
    format_version: int
    what: str
    written_by: str


KINDS = {kind.name: kind for kind in (
    # 1: model.keras + tunekit.json. 2: + checksums of every file, TF Hub SavedModels copied into hub/.
    # 3: + the manifest's checksum of itself.
    Kind("model", 3, "saved model", "tunekit.save_model or Trainer.save"),
    Kind("export", 3, "SavedModel export", "tunekit.export_model or Trainer.export"),
    Kind("tflite", 2, "LiteRT (TFLite) artifact", "tunekit.deploy.export_tflite"),  # 2: + the manifest's checksum
    Kind("adapter", 2, "LoRA adapter", "tunekit.peft.save_adapter"),  # 2: + the manifest's checksum
    Kind("backup", 2, "training backup", "Trainer(backup_dir=...)"),  # 2: + the manifest's checksum
    Kind("backups", 2, "training backup folder", "Trainer(backup_dir=...)"),
    Kind("checkpoints", 1, "checkpoint folder", "Trainer(checkpoint_dir=...)"),
    Kind("logs", 1, "training log folder", "Trainer(log_dir=...)"),
    # backbone.json (pooling, source), encoder/ and preprocessor/ TF Hub-format SavedModels.
    Kind("backbone", 1, "backbone folder", "tunekit.backbones.hub_format.save_backbone"),
    # Anything else written by tunekit.files.write_atomically without its own manifest: the TF Hub-format
    # SavedModels of save_hub_encoder / save_hub_preprocessor, and backbone folders of tunekit 0.1.0.
    Kind("artifact", 1, "tunekit folder", "tunekit"),
)}
FORMAT_VERSIONS = {name: kind.format_version for name, kind in KINDS.items()}


def tunekit_version():
    """The version of this tunekit (what `write_manifest` records)."""
    from tunekit import __version__

    return __version__


def manifest_digest(manifest):
    """The sha256 of a manifest's content (every key but `manifest_sha256`), over its canonical JSON."""
    content = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


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


def write_manifest(directory, manifest, *, files=None):
    """Writes `directory/tunekit.json` atomically: `manifest` (which needs a str `kind` and an int
    `format_version`) with `tunekit_version` (this tunekit's, unless given), `files` (a sha256 of every other file
    under `directory`, unless `files` is given) and `manifest_sha256`.

    Returns the manifest as written."""
    if not isinstance(manifest.get("kind"), str) or not _is_int(manifest.get("format_version")):
        raise TypeError("A tunekit manifest needs a str 'kind' and an int 'format_version'.")
    manifest = {TUNEKIT_VERSION_KEY: tunekit_version(), **manifest,
                "files": file_checksums(directory) if files is None else dict(files)}
    manifest[MANIFEST_CHECKSUM] = manifest_digest(manifest)
    partial = os.path.join(directory, f".{MARKER_FILE}.{os.getpid()}")
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=2)
    os.replace(partial, os.path.join(directory, MARKER_FILE))
    return manifest


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _release(version):
    """The leading numbers of a version string ("0.10.2rc1" -> (0, 10, 2)), for ordering; () if none."""
    match = re.match(r"\d+(\.\d+)*", version) if isinstance(version, str) else None
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _writer(manifest):
    """(how messages name the tunekit that wrote `manifest`, the pip command that installs a tunekit reading it,
    whether that tunekit is newer than this one)."""
    written_by = manifest.get(TUNEKIT_VERSION_KEY)
    if not isinstance(written_by, str) or not _release(written_by):
        return "written by a newer tunekit", "pip install -U tunekit", True
    if _release(written_by) > _release(tunekit_version()):
        return f"written by tunekit {written_by}", f'pip install -U "tunekit>={written_by}"', True
    return f"written by tunekit {written_by}", "pip install -U tunekit", False


def _a(what):
    """`what` with its indefinite article ("a saved model", "an export")."""
    return f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"


def _describe(kinds):
    """What the caller reads, for messages: 'a saved model (written by ...)', joined by 'or'. The generic kind
    "artifact" is left out next to a specific one (a reader accepts it only for folders of older tunekits)."""
    named = [name for name in kinds if name != "artifact"] or kinds
    return " or ".join(f"{_a(KINDS[name].what)} (written by {KINDS[name].written_by})" for name in named)


def read_manifest(directory, kinds=None, *, what=None, verify_files=True, format_version=None):
    """The checked `tunekit.json` of `directory` (see the module docstring).

    Args:
        directory: the folder.
        kinds: the kind the caller reads (a name in `KINDS`, e.g. "model"), several (a tuple), or None: any
            folder tunekit wrote, of any kind and format (its structure and checksums only: how `tunekit.files`
            tells tunekit's folders from the user's).
        what: how messages name the folder (default: the kind's `what`, e.g. "saved model").
        verify_files: also check every listed file against its sha256.
        format_version: the newest format read, as a dict by kind (which also selects the kinds when `kinds` is
            None) or an int; default `FORMAT_VERSIONS`.

    Raises:
        NewerFormatError: a format newer than this tunekit reads (the message names both versions, the tunekit
            that wrote it and the upgrade command).
        DamagedArtifactError: the marker is missing or unreadable, edited since it was written (its checksum does
            not match), or a listed file is missing or changed.
        ValueError: a marker that is not tunekit's or of a kind this tunekit does not know, another kind than
            `kinds`, or an older format.
    """
    if isinstance(format_version, dict) and kinds is None:
        kinds = tuple(format_version)
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    unknown = [name for name in kinds or () if name not in KINDS]
    if unknown:
        raise ValueError(f"read_manifest: unknown kind {unknown[0]!r}; the kinds are {sorted(KINDS)}.")
    what = what or (" or ".join(KINDS[name].what for name in kinds) if kinds else "tunekit folder")
    expected = f"Expected {_describe(kinds)}" if kinds else "Expected a folder tunekit wrote"
    path = os.path.join(directory, MARKER_FILE)
    if not os.path.isfile(path):
        raise DamagedArtifactError(
            f"{directory!r} is not {_a(what)}, or is damaged: it has no {MARKER_FILE}, the manifest in every folder "
            f"tunekit writes, so nothing says what it holds. {expected}: give that folder, or write it again.")
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        if not isinstance(manifest, dict):
            raise ValueError(f"a JSON {type(manifest).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise DamagedArtifactError(
            f"This {what} is damaged: {MARKER_FILE} in {directory!r} cannot be read ({error}).") from None
    kind, version = manifest.get("kind"), manifest.get("format_version")
    if not isinstance(kind, str):
        raise ValueError(
            f"The {MARKER_FILE} in {directory!r} is not a tunekit manifest (it names no kind), so the folder is not "
            f"{_a(what)}. {expected}.")
    if kinds is not None and kind not in KINDS:
        found, upgrade, newer = _writer(manifest)
        raise ValueError(
            f"{directory!r} holds a {MARKER_FILE} of kind {kind!r}, which this tunekit ({tunekit_version()}) does "
            f"not know (it knows {', '.join(sorted(KINDS))}), so the folder is not {_a(what)}. {expected}."
            + (f" The folder was {found}: to read it, {upgrade}." if newer else ""))
    if kinds is not None and kind not in kinds:
        raise ValueError(
            f"{directory!r} holds a tunekit {KINDS[kind].what} (kind {kind!r}), not {_a(what)}. {expected}.")
    newest = None
    if kinds is not None:
        newest = format_version if _is_int(format_version) else (format_version or FORMAT_VERSIONS)[kind]
        if _is_int(version) and version > newest:
            found, upgrade, _ = _writer(manifest)
            raise NewerFormatError(
                f"The {what} {directory!r} has format version {version}, {found}; this tunekit "
                f"({tunekit_version()}) reads format versions up to {newest}. Upgrade to read it: {upgrade}.")
    if manifest.get(MANIFEST_CHECKSUM) != manifest_digest(manifest):
        raise DamagedArtifactError(
            f"This {what} is damaged: {MARKER_FILE} in {directory!r} changed since tunekit wrote it (its "
            f"{MANIFEST_CHECKSUM} does not match its content: an edit, a flipped bit, or a file tunekit did not "
            "write). Write it again with tunekit.")
    if not _is_int(version) or version < 1 or (newest is not None and version != newest):
        reads = f"{KINDS[kind].what} format {newest}" if newest is not None else "format 1 or later"
        rewrite = KINDS[kind].written_by if kind in KINDS else "tunekit"
        raise ValueError(
            f"{directory!r} has format version {version!r}, which this tunekit ({tunekit_version()}) does not read "
            f"(it reads {reads}). Write it again with {rewrite}.")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(key, str) and isinstance(value, str)
                                              for key, value in files.items()):
        raise DamagedArtifactError(f"This {what} is damaged: the 'files' of {MARKER_FILE} in {directory!r} are "
                                   "not a table of file checksums.")
    if verify_files:
        verify_checksums(directory, files, what=what)
    return manifest
