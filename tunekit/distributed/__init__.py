"""Training on several workers with TensorFlow's own `tf.distribute` strategies.

The cluster comes from `TF_CONFIG`, the variable Kubernetes operators, Vertex AI and other schedulers set for
TensorFlow: `{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}`.

- `strategy_from_environment()`: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than one worker,
  `MirroredStrategy` over the local GPUs when there are several, else TensorFlow's default strategy.
- `python -m tunekit.distributed --workers N script.py [args]` runs an unchanged single-process script on N
  local worker processes (see `tunekit.distributed.__main__`); with `TF_CONFIG` already set (one process per
  machine under a scheduler), `python -m tunekit.distributed script.py [args]` runs this machine's worker.

The launcher creates the strategy before the script runs and runs the whole script in its scope, so the
model's and the optimizer's variables are mirrored; `tunekit.Trainer` then trains through `strategy.run`.
Only the chief (worker 0) writes backups, logs, saved models and exports (`chief_writes`).

A worker waits at most `TUNEKIT_CLUSTER_TIMEOUT` seconds (default 600) for the other workers of `TF_CONFIG` to
start (`wait_for_workers`), then fails with a message naming those that never answered.

Example:

>>> from tunekit.distributed import read_tf_config
>>> read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
{'workers': ['a:1', 'b:2'], 'index': 1}
"""

import json
import os
import socket
import tempfile
import time

TF_CONFIG = "TF_CONFIG"
CLUSTER_TIMEOUT = "TUNEKIT_CLUSTER_TIMEOUT"
DEFAULT_CLUSTER_TIMEOUT = 600.0


def _check_address(name, position, address):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"TF_CONFIG cluster.{name}[{position}] is {address!r}, but an address must be 'host:port' with a port "
            f"number from 1 to 65535 (e.g. 'localhost:12345'); fix that entry of TF_CONFIG.")


def read_tf_config(text=None):
    """Parses and checks `TF_CONFIG` (the environment's when `text` is None).

    Returns:
        `{"workers": [addresses], "index": this worker's index}`, or None when `TF_CONFIG` is unset or empty.

    Raises:
        ValueError: the text is not JSON of the expected shape (the message shows the expected form).
    """
    text = os.environ.get(TF_CONFIG, "") if text is None else text
    if not text.strip():
        return None
    expected = ('expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
                " (a chief, if any, is listed as cluster.chief and has task type \"chief\")")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); {expected}.") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(
            config.get("task"), dict):
        raise ValueError(f"TF_CONFIG must hold a 'cluster' and a 'task' object; got {text!r}; {expected}.")
    cluster, task = config["cluster"], config["task"]
    chief = cluster.get("chief", [])
    workers = cluster.get("worker", [])
    for name, addresses in (("chief", chief), ("worker", workers)):
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(f"TF_CONFIG cluster.{name} must be a list of 'host:port' strings, got {addresses!r}.")
        for position, address in enumerate(addresses):
            _check_address(name, position, address)
    if len(chief) > 1:
        raise ValueError(f"TF_CONFIG may name at most one chief, got {chief!r}.")
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ValueError(f"TF_CONFIG cluster has roles {unknown} that tunekit does not use: only 'chief' and 'worker'.")
    members = chief + workers
    if not members:
        raise ValueError(f"TF_CONFIG cluster names no worker; {expected}.")
    kind, index = task.get("type"), task.get("index")
    if kind not in ("chief", "worker") or isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"TF_CONFIG task must be {{'type': 'worker' or 'chief', 'index': int}}, got {task!r}.")
    size = len(chief) if kind == "chief" else len(workers)
    if not 0 <= index < size:
        raise ValueError(f"TF_CONFIG task index {index} is out of range: cluster.{kind} has {size} entr(ies).")
    return {"workers": members, "index": index + (len(chief) if kind == "worker" else 0)}


def cluster_timeout():
    """Seconds a worker waits for the other workers of `TF_CONFIG`: `TUNEKIT_CLUSTER_TIMEOUT`, else 600.

    Raises:
        ValueError: the variable is not a positive number of seconds.
    """
    text = os.environ.get(CLUSTER_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_CLUSTER_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{CLUSTER_TIMEOUT}={text!r} must be a positive number of seconds (e.g. 600), the time a "
                         "worker waits for the other workers of TF_CONFIG to start.")
    return seconds


def _split(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _answers(address, timeout=1.0):
    try:
        socket.create_connection(_split(address), timeout=timeout).close()
        return True
    except OSError:
        return False


def wait_for_workers(config, seconds):
    """Waits until every other worker of `config` (`read_tf_config`) answers at its address, for at most
    `seconds`.

    `MultiWorkerMirroredStrategy()` waits for the whole cluster inside TensorFlow, holding Python's lock, so it can
    neither time out nor be interrupted. So each worker first listens on its own port of `TF_CONFIG` and connects
    to the others' (their listeners, or their TensorFlow servers once they have gone ahead), then lets TensorFlow
    take its port.

    Raises:
        TimeoutError: some workers never answered (the message names them and the settings to change).
        OSError: this worker's own port is taken by another program.
    """
    me = config["index"]
    waiting = {index: address for index, address in enumerate(config["workers"]) if index != me}
    dual = socket.has_dualstack_ipv6()  # IPv4 and IPv6 peers, as TensorFlow's server listens on both
    try:
        listener = socket.create_server(("", _split(config["workers"][me])[1]), backlog=64,
                                        family=socket.AF_INET6 if dual else socket.AF_INET, dualstack_ipv6=dual)
    except OSError as error:
        raise OSError(f"worker {me} cannot listen on its address {config['workers'][me]} of TF_CONFIG ({error}): "
                      "another program uses that port; give this worker a free port in TF_CONFIG.") from None
    deadline = time.monotonic() + seconds
    try:
        while True:
            waiting = {index: address for index, address in waiting.items() if not _answers(address)}
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"worker {index} ({address})" for index, address in waiting.items())
                one = len(waiting) == 1
                raise TimeoutError(
                    f"worker {me} waited {seconds:g} s for the cluster of TF_CONFIG, but {names} never answered: "
                    f"start {'it' if one else 'them'} (or fix {'its address' if one else 'their addresses'} in "
                    f"TF_CONFIG), or wait longer with {CLUSTER_TIMEOUT}=<seconds>.")
            time.sleep(0.5)
    finally:
        listener.close()


def strategy_from_environment():
    """The `tf.distribute` strategy for this process: several workers from `TF_CONFIG`, else several local
    GPUs, else TensorFlow's default strategy (one device). Create it before any other TensorFlow work.

    With several workers it first waits at most `cluster_timeout()` seconds for the others to start
    (`wait_for_workers`: a `TimeoutError` names those that never answered)."""
    import tensorflow as tf

    config = read_tf_config()
    if config is not None and len(config["workers"]) > 1:
        wait_for_workers(config, cluster_timeout())
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_count(strategy=None):
    """Number of worker processes taking part (1 without a multi-worker strategy)."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    return max(sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()), 1)


def is_chief(strategy=None):
    """True in the process that writes files: the only process, or worker 0 / the chief of a cluster."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def chief_writes(write, path):
    """Runs `write(path)` in the chief and `write(scratch)` in every other worker, into a temporary folder that is
    then deleted; returns what the chief's `write` returns (`path` in the other workers).

    Every worker must run the same write: under `MultiWorkerMirroredStrategy`, a variable created anywhere in the
    write (Keras' saving builds a reference optimizer, for one) is initialised by a collective broadcast from the
    chief, which waits for every worker (TensorFlow's recommended way of saving under this strategy). In one
    process, it is `write(path)`.
    """
    if is_chief():
        return write(path)
    with tempfile.TemporaryDirectory(prefix="tunekit-worker-") as scratch:
        write(os.path.join(scratch, os.path.basename(os.path.normpath(path)) or "output"))
    return path
