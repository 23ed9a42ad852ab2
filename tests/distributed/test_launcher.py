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


def load_weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


# 101 examples in global batches of 8: 13 steps an epoch, the last one of 5 examples (split 2 + 3 between the
# workers), reshuffled every epoch; 12 epochs = 156 optimizer steps.
LONG_RUN = {"examples": 101, "epochs": 12}


@pytest.mark.parametrize("layer_decay", [None, 0.8])
def test_two_workers_end_with_the_weights_of_one_process(tmp_path, layer_decay):
    """156 steps of AdamW (and of the layer-wise decay optimizer), clipping on: the workers end identical and within
    1e-5 of one process with the same global batch (before the engine summed the embedding gradients per row: 4.6e-3
    apart). The chief's `trainer.save` after `fit` works (every worker runs it, see `chief_writes`)."""
    from train_script import train

    single = train(dropout=0.0, layer_decay=layer_decay, **LONG_RUN)
    assert int(single.model.core.optimizer.iterations) == 156
    decay = [] if layer_decay is None else ["--layer-decay", str(layer_decay)]
    saving = ["--save", str(tmp_path / "model")] if layer_decay is None else []
    result = subprocess.run([sys.executable, "-m", "tunekit.distributed", "--workers", "2", SCRIPT,
                             str(tmp_path / "weights.npz"), "--dropout", "0", "--examples", "101", "--epochs", "12",
                             *decay, *saving], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("step 156") == 2  # both workers ran every step
    workers = [load_weights(tmp_path / f"weights-worker{index}.npz") for index in (0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(*workers))
    difference = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(single.model.core.weights, workers[0]))
    assert difference <= 1e-5, difference
    if saving:
        assert sorted(os.listdir(tmp_path)) == ["model", "weights-worker0.npz", "weights-worker1.npz"]
        loaded = tk.load_model(tmp_path / "model")
        assert all(np.array_equal(a.numpy(), b) for a, b in zip(loaded.core.weights, workers[0]))
        texts = ["The movie was very good and great.", "The plot was dull and awful.", "An actor."]
        np.testing.assert_allclose(tk.Trainer(loaded).predict(texts), single.predict(texts), rtol=0, atol=1e-5)


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
