"""Per-epoch weight checkpoints that are never half-written.

Keras' `ModelCheckpoint` writes `epoch-XX.weights.h5` in place, so a process killed during the write leaves a
truncated file under the final name. `EpochCheckpoint` writes each file under a hidden temporary name in
the same folder and renames it into place, so a file with the final name is always complete; temporary files
of killed runs are removed when training starts again.

Example:

>>> callback = EpochCheckpoint("checkpoints")                            # doctest: +SKIP
>>> model.fit(data, epochs=3, callbacks=[callback])                      # doctest: +SKIP
>>> sorted(os.listdir("checkpoints"))                                    # doctest: +SKIP
['epoch-01.weights.h5', 'epoch-02.weights.h5', 'epoch-03.weights.h5']
"""

import glob
import os

import keras

PARTIAL_PREFIX = ".partial-"


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model's weights to `directory/epoch-XX.weights.h5` after every epoch, atomically.

    Args:
        directory: the folder of the checkpoints (created if missing).
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = os.fspath(directory)

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        for leftover in glob.glob(os.path.join(self.directory, f"{PARTIAL_PREFIX}*.weights.h5")):
            os.remove(leftover)

    def on_epoch_end(self, epoch, logs=None):
        final = os.path.join(self.directory, f"epoch-{epoch + 1:02d}.weights.h5")
        partial = os.path.join(self.directory, f"{PARTIAL_PREFIX}{os.getpid()}-epoch-{epoch + 1:02d}.weights.h5")
        try:
            self.model.save_weights(partial)
            os.replace(partial, final)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
