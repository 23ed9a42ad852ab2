"""Turn a model handle (URL or local path) into a local TF Hub-format SavedModel directory.

Backbones, TF Hub preprocessors and `tunekit.load_model` (a save's copies under `hub/`) all resolve handles here,
so this module imports nothing from tunekit and sits at the bottom, next to `tunekit.files`.

URLs resolve the way `tensorflow_hub` does: a model downloaded once lives in
`$TFHUB_CACHE_DIR/<sha1(handle)>` (default `<tmp>/tfhub_modules`), and is loaded from there without
network. Set `TUNEKIT_OFFLINE=1` to never try a download: an uncached URL then fails at once with an
error that says how to proceed offline.

Example:

>>> from tunekit.hub_handles import resolve_handle
>>> resolve_handle(encoder_dir) == encoder_dir   # a local folder (e.g. "/models/my_bert_encoder") is used as it is
True
"""

import contextlib
import hashlib
import os
import threading

OFFLINE_ENV = "TUNEKIT_OFFLINE"

_local_copies = threading.local()


class HandleNotAvailableError(OSError):
    """A remote model handle is neither cached locally nor downloadable now."""


def is_url(handle):
    return handle.startswith(("https://", "http://", "gs://"))


def is_offline():
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def hub_cache_dir():
    """The folder where `tensorflow_hub` caches downloaded models (honours `TFHUB_CACHE_DIR`)."""
    from tensorflow_hub import resolver

    return resolver.tfhub_cache_dir(use_temp=True)


def cached_path(handle):
    """Where `tensorflow_hub` keeps (or would keep) the unpacked model for a URL handle."""
    return os.path.join(hub_cache_dir(), hashlib.sha1(handle.encode("utf8")).hexdigest())


def is_saved_model_dir(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb")) or os.path.isfile(
        os.path.join(path, "saved_model.pbtxt")
    )


@contextlib.contextmanager
def local_copies(copies):
    """Within the block, `resolve_handle(handle)` returns `copies[handle]` for the handles it names.

    `tunekit.load_model` uses it to load a saved model's TF Hub encoder and preprocessor from the copies
    saved beside it, whatever their original URL or directory was.
    """
    previous = getattr(_local_copies, "mapping", {})
    _local_copies.mapping = {**previous, **copies}
    try:
        yield
    finally:
        _local_copies.mapping = previous


def resolve_handle(handle, *, what="model"):
    """Returns a local directory holding the SavedModel that `handle` names.

    Args:
        handle: a local directory, or a `https://tfhub.dev/...`, `https://www.kaggle.com/models/...`
            or `gs://...` URL.
        what: a word for error messages ("encoder", "preprocessor").

    Raises:
        ValueError: the path does not exist or is not a SavedModel directory.
        HandleNotAvailableError: a URL that is not in the cache and cannot be downloaded.
    """
    if not isinstance(handle, (str, os.PathLike)):
        raise TypeError(f"The {what} handle must be a string or path, got {type(handle).__name__}: {handle!r}.")
    handle = os.fspath(handle)
    copy = getattr(_local_copies, "mapping", {}).get(handle)
    if copy is not None:
        return copy
    if not is_url(handle):
        path = os.path.abspath(os.path.expanduser(handle))
        if not os.path.isdir(path):
            raise ValueError(
                f"The {what} {handle!r} is neither a URL nor an existing directory. Pass a tfhub.dev/Kaggle URL, "
                "a registered short name (see tunekit.backbones.list_backbones()), or a local TF Hub-format "
                "SavedModel directory."
            )
        if not is_saved_model_dir(path):
            raise ValueError(
                f"The directory {path!r} given as {what} is not a SavedModel (it has no saved_model.pb). "
                "Pass the folder that contains saved_model.pb and variables/ (an unpacked TF Hub model)."
            )
        return path

    cached = cached_path(handle)
    if is_saved_model_dir(cached):
        return cached
    offline_help = (
        f"To use it offline: on a machine with network run `python -c \"import tensorflow_hub as hub; "
        f"hub.resolve('{handle}')\"` with TFHUB_CACHE_DIR set, and copy that cache folder here (TFHUB_CACHE_DIR is "
        f"now {hub_cache_dir()!r}; this handle is cached as {os.path.basename(cached)!r}), or download and unpack "
        "the model archive and pass its local directory instead of the URL."
    )
    if is_offline():
        raise HandleNotAvailableError(
            f"The {what} {handle!r} is not in the TF Hub cache and {OFFLINE_ENV}=1 forbids downloading it. "
            + offline_help
        )
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as error:  # noqa: BLE001 - urllib, HTTP and filesystem errors all mean "unavailable"
        raise HandleNotAvailableError(
            f"Could not download the {what} {handle!r} ({type(error).__name__}: {error}). " + offline_help
        ) from error
