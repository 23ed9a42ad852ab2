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
Only the chief (worker 0) writes backups, logs, saved models and exports.

Example:

>>> from tunekit.distributed import read_tf_config
>>> read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
{'workers': ['a:1', 'b:2'], 'index': 1}
"""

import json
import os

TF_CONFIG = "TF_CONFIG"


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


def strategy_from_environment():
    """The `tf.distribute` strategy for this process: several workers from `TF_CONFIG`, else several local
    GPUs, else TensorFlow's default strategy (one device). Create it before any other TensorFlow work."""
    import tensorflow as tf

    config = read_tf_config()
    if config is not None and len(config["workers"]) > 1:
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
