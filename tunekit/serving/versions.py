"""Hot model versions: a folder of numbered versions watched while serving, as TF Serving polls its file system.

Every `poll_s` seconds, `VersionWatcher.poll` lists the numbered subfolders of each model given as a base folder
(`imdb/1`, `imdb/2`, ...):

- a **new version** (numbered higher than the default; older ones, retired ones included, are not loaded again) is
  loaded only once it is complete: its `tunekit.json` present and every file it lists matching
  its sha256 (`tunekit.formats.read_manifest`). Then it is warmed up and becomes the default, and the older versions are
  retired (TF Serving's latest-version policy; at start every complete version is served).
- a version that is **incomplete or damaged** (copied file by file and not finished, or corrupted) is logged once
  and ignored, never served; it is checked again when its files change (so a copy that completes is then loaded).
- a version whose **folder is deleted** is retired, unless it is the only one left (then it keeps serving from
  memory, with a warning).
- a retired version stops taking new requests at once (they go to the new default; a request naming it gets 404),
  and is unloaded once the requests it is running have finished.

`/v1/models/NAME` shows each version's state as TF Serving does: LOADING, AVAILABLE, UNLOADING, END.

Example (what `create_app(..., poll_seconds=5)` runs in its lifespan):

>>> watcher = VersionWatcher(state, poll_s=5.0)      # state: the app's (its models)   # doctest: +SKIP
>>> await watcher.run()      # polls until the server stops, in the app's event loop   # doctest: +SKIP
"""

import asyncio
import functools
import logging
import os

from tunekit.serving.models import ServedModel

logger = logging.getLogger("tunekit.serving")

DEFAULT_POLL_S = 5.0
_IN_FLIGHT_CHECK_S = 0.05


def version_folders(base):
    """`{version: path}` of the numbered subfolders of `base` (complete or not); {} if `base` is gone."""
    try:
        entries = os.listdir(base)
    except OSError:
        return {}
    return {entry: os.path.join(base, entry) for entry in entries
            if entry.isdigit() and os.path.isdir(os.path.join(base, entry))}


def fingerprint(path):
    """The files under `path` with their sizes and modification times: changes while a copy is in progress."""
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(files))


def check_complete(path, what):
    """Raises a ValueError naming what is missing or damaged unless the version folder is complete."""
    from tunekit.formats import read_manifest

    read_manifest(path, ("export", "tflite"), what=what, verify_files=True)


class VersionWatcher:
    """Polls the version folders of the app state's watched models and loads, switches and retires versions."""

    def __init__(self, state, poll_s=DEFAULT_POLL_S):
        self.state, self.poll_s = state, poll_s
        self._rejected = {}  # (name, version) -> fingerprint of the files that were refused
        self._retiring = set()

    async def run(self, after=None):
        """Polls for ever (cancel the task to stop), starting once the task `after` (the initial load) is done, and
        not at all if that load failed; a failing poll is logged and the next one runs."""
        if after is not None:
            await asyncio.wait([after])
        if self.state.failed is not None:
            return
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception:
                logger.exception("polling the model version folders failed")

    async def poll(self):
        for name, base in self.state.watched.items():
            on_disk = version_folders(base)
            newer = [v for v in on_disk if int(v) > int(self.state.defaults[name]) and v not in self.state.models[name]]
            for version in sorted(newer, key=int):
                await self._consider(name, version, on_disk[version])
            for version in set(self.state.models[name]) - set(on_disk):
                self._deleted(name, version)

    async def _consider(self, name, version, path):
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(None, fingerprint, path)
        if self._rejected.get((name, version)) == files:
            return
        what = f"model {name!r} version {version}"
        try:
            await loop.run_in_executor(None, check_complete, path, what)
        except (ValueError, OSError) as error:  # OSError: a file removed or unreadable while it was checked
            self._rejected[(name, version)] = files
            logger.warning("%s in %s is incomplete or damaged, not loaded (checked again when its files change): "
                           "%s", what, path, error)
            return
        state = self.state
        served = ServedModel(name, version, path, state.batching)
        state.pending.setdefault(name, {})[version] = served
        try:
            await loop.run_in_executor(None, served.load)
        except Exception as error:
            self._rejected[(name, version)] = files
            served.status, served.error = "END", str(error)
            state.retired.setdefault(name, {})[version] = served
            logger.error("%s in %s failed to load, not served: %s", what, path, error)
            return
        finally:
            state.pending[name].pop(version, None)
        served.start(functools.partial(state.metrics.observe_batch, name))
        state.metrics.ready.labels(name, version).set(1)
        state.models[name][version] = served
        state.retired.get(name, {}).pop(version, None)
        logger.info("%s is loaded and warmed up", what)
        if int(version) > int(state.defaults[name]):  # no newer version came meanwhile
            state.defaults[name] = version
            logger.info("%s is now the default", what)
            for older in [v for v in state.models[name] if int(v) < int(version)]:
                self._retire(name, older, "a newer version is the default")

    def _deleted(self, name, version):
        state = self.state
        others = [v for v in state.models[name] if v != version]
        if not others:
            logger.warning("the folder of model %r version %s was deleted, but it is the only version: it keeps "
                           "serving from memory", name, version)
            return
        if state.defaults[name] == version:
            state.defaults[name] = max(others, key=int)
            logger.info("model %r version %s is now the default", name, state.defaults[name])
        self._retire(name, version, "its folder was deleted")

    def _retire(self, name, version, reason):
        """Takes the version out of routing now, and unloads it once its in-flight requests have finished."""
        served = self.state.models[name].pop(version)
        served.ready, served.status = False, "UNLOADING"
        self.state.retired.setdefault(name, {})[version] = served
        self.state.metrics.forget_version(name, version)
        logger.info("retiring model %r version %s (%s)", name, version, reason)
        task = asyncio.get_running_loop().create_task(self._unload(served))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _unload(self, served):
        while served.in_flight:
            await asyncio.sleep(_IN_FLIGHT_CHECK_S)
        if served.batcher is not None:
            await served.batcher.stop()
        served.batcher, served.artifact, served.status = None, None, "END"
        logger.info("unloaded model %r version %s", served.name, served.version)
