"""Shared pieces of the benchmark scripts: where the shared data lives, timing, and result tables."""

import json
import os
import platform
import time

import keras
import tensorflow as tf

SHARED_DATA = os.environ.get(
    "TUNEKIT_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)


def shared_data(name):
    """The folder of a dataset in the shared data directory (override its root with TUNEKIT_SHARED_DATA)."""
    path = os.path.abspath(os.path.join(SHARED_DATA, name))
    if not os.path.isdir(path):
        raise SystemExit(f"{path} not found: set TUNEKIT_SHARED_DATA to the folder that holds {name}/.")
    return path


class Stopwatch:
    """`with Stopwatch() as watch: ...` then `watch.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


class BatchClock(keras.callbacks.Callback):
    """`callbacks=[clock]`: the end time of every training batch in `clock.ends`, for the steady rate (the first
    batch, which traces the step, left out)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def cpu_name():
    """The CPU's model name (Linux: /proc/cpuinfo's "model name"), and whether it has AMX bfloat16 units."""
    from tunekit.backbones.precision import cpu_flags

    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        name = model[0] if model else name
    return f"{name}{', AMX' if 'amx_bf16' in cpu_flags() else ''}"


def machine():
    devices = [device.device_type for device in tf.config.list_physical_devices()]
    return f"{cpu_name()}, {os.cpu_count()} cores, devices {devices}, TF {tf.__version__}"


def print_table(title, rows, record=None):
    """Prints a list of dicts as an aligned table, and as one JSON line for machines; also writes that text to
    `record` (a file or `io.StringIO` collecting a results file) when given."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_format(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(cell[i]) for cell in cells)) for i, column in enumerate(columns)]
    lines = [f"\n{title}", "  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines += ["  ".join(value.ljust(width) for value, width in zip(cell, widths)) for cell in cells]
    lines.append("json: " + json.dumps({"title": title, "rows": rows}))
    text = "\n".join(lines) + "\n"
    print(text, end="", flush=True)
    if record is not None:
        record.write(text)


class RunLog:
    """Finished runs of a benchmark grid in a JSON-lines file, so that a grid too long for one sitting fills over
    several: a run recorded with the same `settings` is not run again.

    `log[key]` is a recorded run's result (a dict), `key in log` says whether it is recorded, `log.record(key,
    result)` appends one; `key` is a dict of the run's coordinates (dataset, method, seed...). With `path` empty
    nothing is read or written.
    """

    def __init__(self, path, settings):
        self.path, self.settings, self.runs = path, settings, {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    run = json.loads(line)
                    if run.pop("settings") == settings:
                        self.runs[self._key(run["key"])] = run["result"]

    @staticmethod
    def _key(key):
        return tuple(sorted(key.items()))

    def __contains__(self, key):
        return self._key(key) in self.runs

    def __getitem__(self, key):
        return self.runs[self._key(key)]

    def record(self, key, result):
        self.runs[self._key(key)] = result
        if self.path:
            with open(self.path, "a", encoding="utf-8") as lines:
                lines.write(json.dumps({"key": key, "result": result, "settings": self.settings}) + "\n")


def _format(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)
