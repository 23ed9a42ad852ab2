"""Per-epoch weight checkpoints that are never half-written, and never written over the user's files.

Keras' `ModelCheckpoint` writes `epoch-XX.weights.h5` in place, so a process killed during the write leaves a
truncated file under the final name. `EpochCheckpoint` writes each file under a hidden temporary name in
the same folder and renames it into place, so a file with the final name is always complete; temporary files
of killed runs are removed when training starts again.

The folder holds a `tunekit.json` manifest of kind "checkpoints" listing the checkpoints tunekit wrote, with
their sha256 (`tunekit.formats.write_manifest`). A folder holding any other file (the user's own
`epoch-01.weights.h5`, notes) is refused before training (`check_checkpoint_dir`): tunekit only overwrites
checkpoints it wrote itself.

`Trainer(..., checkpoint_dir="checkpoints")` adds it; any Keras model can use it (here a toy one):

>>> import keras
>>> toy = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> toy.compile("sgd", "mse")
>>> callback = EpochCheckpoint("checkpoints")
>>> history = toy.fit(np.zeros((4, 2)), np.zeros(4), epochs=3, callbacks=[callback], verbose=0)
>>> sorted(os.listdir("checkpoints"))
['epoch-01.weights.h5', 'epoch-02.weights.h5', 'epoch-03.weights.h5', 'tunekit.json']
"""

import os
import re

import keras

from tunekit.files import check_writable, folder_argument, unlisted_files
from tunekit.formats import FORMAT_VERSIONS, NewerFormatError, read_manifest, sha256_of_file, write_manifest

PARTIAL_PREFIX = ".partial-"
KIND = "checkpoints"
_PARTIAL = re.compile(r"\.partial-\d+-epoch-\d+\.weights\.h5")


def _checkpoints_manifest(directory):
    """The manifest of a checkpoint folder tunekit made (deleted checkpoints allowed), else None; raises
    `NewerFormatError` for one of a newer format."""
    try:
        return read_manifest(directory, KIND, verify_files=False)
    except NewerFormatError:
        raise
    except ValueError:
        return None


def check_checkpoint_dir(directory):
    """The absolute path of `directory` (`~` expanded) if tunekit may write checkpoints there: absent, empty, or a
    checkpoint folder tunekit made that holds only its files. Raises `ValueError` for a file or a folder holding
    other files, `PermissionError` for a read-only one (before any training work)."""
    directory = folder_argument(directory, "checkpoint_dir",
                                "the epoch-XX.weights.h5 checkpoints (e.g. checkpoints/my_run)")
    if os.path.isdir(directory):
        manifest = _checkpoints_manifest(directory)
        if manifest is not None:
            foreign = [name for name in unlisted_files(directory, manifest) if not _PARTIAL.fullmatch(name)]
        else:
            foreign = sorted(os.listdir(directory))
        if foreign:
            raise ValueError(
                f"checkpoint_dir {directory!r} holds files that tunekit did not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}), which its epoch-XX.weights.h5 checkpoints could "
                "overwrite. Give a new or empty folder, e.g. checkpoints/my_run.")
    check_writable(os.path.join(directory, "epoch-01.weights.h5"))
    return directory


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model's weights to `directory/epoch-XX.weights.h5` after every epoch, atomically.

    Args:
        directory: the folder of the checkpoints (created if missing; see `check_checkpoint_dir`).
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = check_checkpoint_dir(directory)

    def _manifest(self, files):
        write_manifest(self.directory, {"kind": KIND, "format_version": FORMAT_VERSIONS[KIND]}, files=files)

    def on_train_begin(self, logs=None):
        check_checkpoint_dir(self.directory)
        os.makedirs(self.directory, exist_ok=True)
        if _checkpoints_manifest(self.directory) is None:
            self._manifest({})
        for name in os.listdir(self.directory):
            if _PARTIAL.fullmatch(name):
                os.remove(os.path.join(self.directory, name))

    def on_epoch_end(self, epoch, logs=None):
        name = f"epoch-{epoch + 1:02d}.weights.h5"
        final = os.path.join(self.directory, name)
        partial = os.path.join(self.directory, f"{PARTIAL_PREFIX}{os.getpid()}-{name}")
        try:
            self.model.save_weights(partial)
            digest = sha256_of_file(partial)
            os.replace(partial, final)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        listed = _checkpoints_manifest(self.directory)["files"]
        self._manifest({**{file: value for file, value in listed.items()
                           if os.path.isfile(os.path.join(self.directory, file))}, name: digest})
