"""Atomic writes: a model directory on disk is either complete or absent, never half-written."""

import os
import shutil
import tempfile


def write_atomically(target, write):
    """Calls `write(temporary_path)` beside `target`, then moves the result onto `target`.

    An interrupted write leaves `target` as it was; an existing `target` is replaced only once the new
    one is complete.
    """
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.partial-")
    try:
        written = os.path.join(staging, "new")
        write(written)
        if os.path.lexists(target):
            os.replace(target, os.path.join(staging, "previous"))
        os.replace(written, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
