"""`python -m tunekit.distributed`: several local workers (MultiWorkerMirroredStrategy), TF_CONFIG checks."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.backbones.bert import BertEncoder
from tunekit.distributed import read_tf_config

TRAINING = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training")
SCRIPT = os.path.join(TRAINING, "train_script.py")
sys.path.insert(0, TRAINING)


def load_weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


# 101 examples in global batches of 8: 13 steps an epoch, the last one of 5 examples (split 2 + 3 between the
# workers), reshuffled every epoch; 4 epochs = 52 optimizer steps (benchmarks/distributed.py runs longer ones).
LONG_RUN = {"examples": 101, "epochs": 4}
STEPS = 13 * LONG_RUN["epochs"]
TEXTS = ["The movie was very good and great.", "The plot was dull and awful.", "An actor."]


def train_on_two_workers(tmp_path, *options):
    """train_script.py (dropout 0, LONG_RUN) on 2 workers -> the weights both end with, checked identical."""
    result = subprocess.run([sys.executable, "-m", "tunekit.distributed", "--workers", "2", SCRIPT,
                             str(tmp_path / "weights.npz"), "--dropout", "0", "--examples", str(LONG_RUN["examples"]),
                             "--epochs", str(LONG_RUN["epochs"]), *options], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"step {STEPS}") == 2  # both workers ran every step
    workers = [load_weights(tmp_path / f"weights-worker{index}.npz") for index in (0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(*workers))
    return workers[0]


def max_difference(trainer, weights):
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(trainer.model.core.weights, weights))


def check_chief_save(folder, weights, single):
    """The chief's save holds the workers' weights and predicts like the single process's model."""
    loaded = tk.load_model(folder)
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(loaded.core.weights, weights))
    np.testing.assert_allclose(tk.Trainer(loaded).predict(TEXTS), single.predict(TEXTS), rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer_decay", [None, 0.8])
def test_two_workers_end_with_the_weights_of_one_process(tmp_path, layer_decay):
    """52 steps of AdamW (and of the layer-wise decay optimizer), clipping on: the workers end identical and within
    1e-5 of one process with the same global batch (before the engine summed the embedding gradients per row: 4.6e-3
    apart after 156 steps). The chief's `trainer.save` and `trainer.export` after `fit` work (every worker runs them,
    see `chief_writes`)."""
    from train_script import train

    single = train(dropout=0.0, layer_decay=layer_decay, **LONG_RUN)
    assert int(single.model.core.optimizer.iterations) == STEPS
    decay = [] if layer_decay is None else ["--layer-decay", str(layer_decay)]
    saving = ["--save", str(tmp_path / "model"), "--export", str(tmp_path / "export")] if layer_decay is None else []
    weights = train_on_two_workers(tmp_path, *decay, *saving)
    difference = max_difference(single, weights)
    assert difference <= 1e-5, difference
    if saving:
        assert sorted(os.listdir(tmp_path)) == ["export", "model", "weights-worker0.npz", "weights-worker1.npz"]
        check_chief_save(tmp_path / "model", weights, single)
        serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
        np.testing.assert_allclose(serve(text=tf.constant(TEXTS))["probabilities"].numpy(), single.predict(TEXTS),
                                   rtol=0, atol=1e-5)


def test_two_workers_on_a_model_garden_encoder_end_with_the_weights_of_one_process(model_garden, tmp_path):
    """The same on a TF Hub encoder exported by TF Model Garden's own code, which `load_backbone` converts to the
    native BertEncoder, with its published preprocessor (2 layers, hidden 32): 52 steps, the chief's save."""
    from train_script import train

    encoder = {"encoder": model_garden["encoder"], "preprocessor": model_garden["preprocessor"]}
    assert isinstance(tk.load_backbone(encoder["encoder"], preprocessor=encoder["preprocessor"], seq_length=16).encoder,
                      BertEncoder)
    single = train(dropout=0.0, **encoder, **LONG_RUN)
    weights = train_on_two_workers(tmp_path, "--encoder", encoder["encoder"], "--preprocessor", encoder["preprocessor"],
                                   "--save", str(tmp_path / "model"))
    difference = max_difference(single, weights)
    assert difference <= 1e-5, difference
    check_chief_save(tmp_path / "model", weights, single)


def test_a_failing_worker_stops_the_others_and_its_error_is_the_exit_code(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {TRAINING!r})
        from tunekit.distributed import read_tf_config
        from train_script import train
        try:
            train(batch_size=7)  # 7 does not split between 2 workers
        except ValueError:
            if read_tf_config()["index"] == 1:
                raise
        time.sleep(300)  # worker 0 would hang: the launcher must stop it
    """))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tunekit.distributed", "--workers", "2", str(script)],
                            capture_output=True, text=True, timeout=200)
    assert result.returncode == 1
    assert "batch_size=7 is the global batch and must divide evenly between the 2 replicas" in result.stderr
    assert time.monotonic() - start < 150  # worker 0 was stopped, not waited for


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "must hold a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "list of 'host:port'"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'ps'"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "index 2 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}', "task must be"),
    ('{"cluster": {"worker": ["a:1", "b:port"]}, "task": {"type": "worker", "index": 0}}',
     r"cluster.worker\[1\] is 'b:port', but an address must be 'host:port' with a port number"),
    ('{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}', "from 1 to 65535"),
])
def test_malformed_tf_config_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        read_tf_config(text)


def test_chief_comes_first():
    config = '{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}'
    assert read_tf_config(config) == {"workers": ["c:1", "a:1"], "index": 1}
    assert read_tf_config("") is None


def test_tf_config_of_a_cluster_without_its_strategy_is_refused(backbone, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
    trainer = tk.Trainer(tk.attach_head(backbone, "classification", num_classes=2), verbose=0)
    with pytest.raises(ValueError, match="python -m tunekit.distributed"):
        trainer.fit(["good", "bad"], [1, 0])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run_alone(script, tf_config, timeout, **environment):
    """Runs `script` as one worker of `tf_config` (the others are never started)."""
    return subprocess.run([sys.executable, "-m", "tunekit.distributed", str(script)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CONFIG": tf_config, **environment})


@pytest.mark.parametrize("index", [0, 1])
def test_a_worker_that_never_starts_is_named_after_the_cluster_timeout(tmp_path, index):
    """Worker `index` alone of a cluster of 2 used to wait forever (for the leader too when it is worker 1)."""
    script = tmp_path / "script.py"
    script.write_text("print('the script ran')\n")
    ports = free_ports(2)
    config = json.dumps({"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                         "task": {"type": "worker", "index": index}})
    start = time.monotonic()
    result = run_alone(script, config, timeout=120, TUNEKIT_CLUSTER_TIMEOUT="5")
    missing = 1 - index
    assert result.returncode == 3, result.stderr[-3000:]
    assert (f"worker {index} waited 5 s for the cluster of TF_CONFIG, but worker {missing} "
            f"(localhost:{ports[missing]}) never answered") in result.stderr
    assert "TUNEKIT_CLUSTER_TIMEOUT=<seconds>" in result.stderr
    assert "the script ran" not in result.stdout
    assert time.monotonic() - start < 90


@pytest.mark.parametrize("tf_config, timeout, message", [
    ('{"cluster": {"worker": ["localhost:1234", "localhost:http"]}, "task": {"type": "worker", "index": 0}}', "",
     "cluster.worker[1] is 'localhost:http', but an address must be 'host:port' with a port number"),
    ('{"cluster": {"worker": ["localhost:1234", "localhost:1235"]}, "task": {"type": "worker", "index": 0}}', "soon",
     "TUNEKIT_CLUSTER_TIMEOUT='soon' must be a positive number of seconds"),
])
def test_bad_cluster_settings_are_refused_before_starting(tmp_path, tf_config, timeout, message):
    script = tmp_path / "script.py"
    script.write_text("print('the script ran')\n")
    result = run_alone(script, tf_config, timeout=60, TUNEKIT_CLUSTER_TIMEOUT=timeout)
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr
    assert "the script ran" not in result.stdout


WAITING_WORKER = """
import os, signal, sys, time
from tunekit.distributed import read_tf_config
index = read_tf_config()["index"]
with open(os.path.join({folder!r}, f"pid-{{index}}"), "w") as file:
    file.write(str(os.getpid()))
if index == {die!r}:
    os.kill(os.getpid(), signal.SIGKILL)
try:
    time.sleep(300)
finally:
    open(os.path.join({folder!r}, f"stopped-{{index}}"), "w").close()
"""


def start_launcher(tmp_path, die=None):
    """The launcher on 2 workers of WAITING_WORKER, once both have created their strategy -> (launcher, pids)."""
    script = tmp_path / "script.py"
    script.write_text(WAITING_WORKER.format(folder=str(tmp_path), die=die))
    stderr = open(tmp_path / "stderr.txt", "w")  # a file: TensorFlow's logs would fill a pipe
    launcher = subprocess.Popen([sys.executable, "-m", "tunekit.distributed", "--workers", "2", str(script)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    stderr.close()
    deadline = time.monotonic() + 200
    while not all((tmp_path / f"pid-{index}").exists() for index in (0, 1)) and launcher.poll() is None:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)
    time.sleep(0.5)  # the pid files are written before they are complete
    return launcher, [int((tmp_path / f"pid-{index}").read_text()) for index in (0, 1)]


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_to_the_launcher_is_passed_on_and_the_workers_are_waited_for(tmp_path):
    """It used to exit at once and leave both workers running (for 300 s here)."""
    launcher, pids = start_launcher(tmp_path)
    try:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 128 + signal.SIGTERM
        assert all(gone(pid) for pid in pids)
        # Each worker ended at SIGTERM through its `finally` block (not killed after the grace period).
        assert all((tmp_path / f"stopped-{index}").exists() for index in (0, 1))
        assert "received SIGTERM: passing it on to the workers" in (tmp_path / "stderr.txt").read_text()
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()


def test_a_worker_killed_by_a_signal_is_named_with_the_signal(tmp_path):
    """Worker 1 is killed (SIGKILL) after the cluster formed: the launcher says which worker and how, stops
    worker 0 and exits with 128 + 9."""
    launcher, pids = start_launcher(tmp_path, die=1)
    try:
        assert launcher.wait(timeout=60) == 128 + signal.SIGKILL
        stderr = (tmp_path / "stderr.txt").read_text()
        assert "tunekit.distributed: worker 1 (localhost:" in stderr
        assert "was killed by signal SIGKILL; stopping worker 0." in stderr
        assert all(gone(pid) for pid in pids)
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()


DYING_WORKER = """
import os, signal, sys
sys.path.insert(0, {training!r})
import keras
from train_script import train
from tunekit.distributed import read_tf_config

class DieAtStep5(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if read_tf_config()["index"] == 1 and batch == 4:
            os.kill(os.getpid(), signal.SIGKILL)

train(dropout=0.0, epochs=50, callbacks=[DieAtStep5()])
"""


def test_a_worker_under_a_scheduler_names_the_worker_it_lost(tmp_path):
    """Without the launcher (one worker per machine, TF_CONFIG from a scheduler), worker 1 is killed during
    training: worker 0 fails with exit status 1 and says which worker it lost, after TensorFlow's gRPC error."""
    script = tmp_path / "script.py"
    script.write_text(DYING_WORKER.format(training=TRAINING))
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    workers = []
    for index in (0, 1):
        config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        with open(tmp_path / f"stderr-{index}.txt", "w") as stderr:
            workers.append(subprocess.Popen([sys.executable, "-m", "tunekit.distributed", str(script)],
                                            stdout=subprocess.DEVNULL, stderr=stderr,
                                            env={**os.environ, "TF_CONFIG": config}))
    try:
        assert workers[1].wait(timeout=200) == -signal.SIGKILL
        assert workers[0].wait(timeout=120) == 1
        stderr = (tmp_path / "stderr-0.txt").read_text()
        message = (f"tunekit.distributed: worker 0 lost worker 1 ({cluster[1]}): it stopped or cannot be reached (its "
                   "own log says why); rerun every worker (with backup_dir, training resumes from the last backup).")
        assert message in stderr
        assert stderr.index(message) > stderr.index("UnavailableError")  # said last, after TensorFlow's error
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
