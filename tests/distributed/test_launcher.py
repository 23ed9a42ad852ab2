"""`python -m tunekit.distributed`: several local workers (MultiWorkerMirroredStrategy), TF_CONFIG checks."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tunekit as tk
from tunekit.distributed import read_tf_config

TRAINING = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training")
SCRIPT = os.path.join(TRAINING, "train_script.py")
sys.path.insert(0, TRAINING)


def test_two_workers_end_with_the_weights_of_one_process(tmp_path):
    """With layer-wise learning-rate decay on, so that its optimizer is checked under the strategy too."""
    from train_script import train

    single = [v.numpy() for v in train(dropout=0.0, layer_decay=0.8).model.core.weights]
    result = subprocess.run([sys.executable, "-m", "tunekit.distributed", "--workers", "2", SCRIPT,
                             str(tmp_path / "weights.npz"), "--dropout", "0", "--layer-decay", "0.8"],
                            capture_output=True, text=True,
                            timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    workers = []
    for index in (0, 1):
        with np.load(tmp_path / f"weights-worker{index}.npz") as saved:
            workers.append([saved[f"arr_{i}"] for i in range(len(saved.files))])
    assert all(np.array_equal(a, b) for a, b in zip(*workers))
    difference = max(float(np.abs(a - b).max()) for a, b in zip(single, workers[0]))
    assert difference <= 1e-5, difference


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
