"""Do the fast settings keep accuracy? bfloat16 and length grouping against random batches in float32, over seeds.

    python benchmarks/fast_settings.py            # IMDB 2,000 + SST-2 8,000 training texts, 3 seeds (~70 min)
    python benchmarks/fast_settings.py --quick    # 64 training texts, 1 seed: checks the script (~4 min)
    python benchmarks/fast_settings.py --datasets sst2 --settings "ungrouped,bf16 ungrouped" --seeds 0
    python benchmarks/fast_settings.py --datasets imdb-example --settings ungrouped,grouped   # README's example

A setting may become a default only if it keeps accuracy (issue #21: bfloat16 within 0.3 points on IMDB and SST-2
across 3 seeds). Each row fine-tunes minilm-l6 with tunekit's defaults (`load_backbone("minilm-l6")`, seq_length
128, head+tail truncation; `Trainer(model, seed=seed)`: AdamW at the learning rate for MiniLM's width, warmup and
linear decay, batch 32) for `--epochs` over the same training sample, with the batching and precision of its setting:

- `ungrouped`: `Trainer(..., group_by_length=False)`: float32, batches in a seeded random order, each padded to its
  longest text (tunekit's defaults until these runs made length grouping the default);
- `bf16 ungrouped`: as `ungrouped` with `load_backbone(..., dtype="mixed_bfloat16")` (bfloat16 compute, float32
  weights);
- `grouped`: batches of texts of similar length (`group_by_length=True`, tunekit's default);
- `bf16 grouped`: both.

The dataset `imdb-example` is the README example's run instead (examples/imdb_sentiment.py at its defaults): the
3,000 training and 1,000 test reviews shipped with tunekit, seq_length 256, batch 16, learning rate 1e-4; its seed
0 is the example's own run.

Reported per dataset and setting: test accuracy (IMDB: a balanced sample of official test reviews; SST-2: the 872
dev sentences) as mean ± std over seeds, the mean and the largest per-seed difference to `ungrouped` of the same
seed (points), training seconds (the whole `fit`) and steady examples/s (first batch left out), with ratios to
`ungrouped`. Then a census of the traced training step in float32 and bfloat16: the matrix products (MatMul,
BatchMatMul, Einsum) by dtype, the casts, and the dtypes of softmax, layer normalisation and GELU: what stays
float32 under `mixed_bfloat16` (the graph as traced, before Grappler's and oneDNN's rewrites).

Every finished run is appended to `--runs` (benchmarks/results/fast_settings-runs.jsonl) and skipped when the
script runs again with the same settings. Reads ../shared/data/{imdb,sst2} (TUNEKIT_SHARED_DATA moves it). Run it
alone on the machine.
"""

import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf
from common import BatchClock, RunLog, cpu_name, machine, print_table, shared_data

import tunekit as tk
from tunekit.inputs.text_batches import split_segments, text_dataset

# The README example's load_backbone and Trainer options (examples/imdb_sentiment.py); other datasets: the defaults.
EXAMPLE = ({"seq_length": 256}, {"batch_size": 16, "learning_rate": 1e-4})
SETTINGS = {"ungrouped": (None, False), "bf16 ungrouped": ("mixed_bfloat16", False), "grouped": (None, True),
            "bf16 grouped": ("mixed_bfloat16", True)}
BASELINE = "ungrouped"
LABELS = ["negative", "positive"]
RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fast_settings-runs.jsonl")
MATRIX_PRODUCTS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
WATCHED = {"Softmax", "Erf", "Tanh", "Rsqrt", "Mean", "SquaredDifference"}  # softmax, GELU, layer norm


def load(dataset, args):
    if dataset == "imdb-example":  # the sample shipped with tunekit, as the example reads it
        train = tk.datasets.imdb("train", limit=3000)
        test = tk.datasets.imdb("test", limit=1000)
        return (list(train[0]), np.asarray(train[1])), (list(test[0]), np.asarray(test[1]))
    data_dir = shared_data(dataset)
    if dataset == "imdb":
        train = tk.datasets.imdb("train", data_dir=data_dir, limit=args.imdb_train, seed=0)
        test = tk.datasets.imdb("test", data_dir=data_dir, limit=args.imdb_test, seed=0)
    else:
        train = tk.datasets.sst2("train", data_dir=data_dir, limit=args.sst2_train, seed=0)
        test = tk.datasets.sst2("validation", data_dir=data_dir, limit=args.sst2_test, seed=0)
    return (list(train[0]), np.asarray(train[1])), (list(test[0]), np.asarray(test[1]))


def run(setting, seed, train, test, args, dataset):
    """Trains one row's model -> {accuracy, seconds, steady_ex_per_s}."""
    dtype, grouped = SETTINGS[setting]
    backbone_options, trainer_options = EXAMPLE if dataset == "imdb-example" else ({}, {})
    backbone = tk.load_backbone("minilm-l6", dtype=dtype, **backbone_options)
    model = tk.attach_head(backbone, "classification", labels=LABELS, seed=seed)
    clock = BatchClock()
    trainer = tk.Trainer(model, epochs=args.epochs, seed=seed, group_by_length=grouped, callbacks=[clock],
                         verbose=0, **trainer_options)
    started = time.perf_counter()
    trainer.fit(*train)
    seconds = time.perf_counter() - started
    after_first = len(train[0]) * args.epochs - trainer.batch_size
    steady = after_first / (clock.ends[-1] - clock.ends[0]) if len(clock.ends) > 1 else float("nan")
    return {"accuracy": round(trainer.evaluate(*test)["accuracy"], 4), "seconds": round(seconds, 1),
            "steady_ex_per_s": round(steady, 2)}


def rows_of(dataset, settings, seeds, log):
    rows = []
    base = [log[{"dataset": dataset, "setting": BASELINE, "seed": seed}] for seed in seeds] \
        if BASELINE in settings else None
    for setting in settings:
        runs = [log[{"dataset": dataset, "setting": setting, "seed": seed}] for seed in seeds]
        accuracies = [run["accuracy"] for run in runs]
        row = {"dataset": dataset, "setting": setting, "accuracy_mean": round(statistics.mean(accuracies), 4),
               "accuracy_std": round(statistics.stdev(accuracies), 4) if len(runs) > 1 else 0.0}
        if base is not None:
            differences = [100 * (run["accuracy"] - ref["accuracy"]) for run, ref in zip(runs, base)]
            row["vs_ungrouped_points"] = round(statistics.mean(differences), 2)
            row["worst_seed_points"] = round(min(differences), 2)
        row["seconds"] = round(statistics.mean(run["seconds"] for run in runs), 1)
        row["steady_ex_per_s"] = round(statistics.mean(run["steady_ex_per_s"] for run in runs), 2)
        if base is not None:
            row["x_ungrouped_fit"] = round(statistics.mean(ref["seconds"] for ref in base) / row["seconds"], 2)
            row["x_ungrouped_steady"] = round(
                row["steady_ex_per_s"] / statistics.mean(ref["steady_ex_per_s"] for ref in base), 2)
        row["seeds"] = len(runs)
        rows.append(row)
    return rows


def op_census(dtype, texts, labels):
    """Counts the ops of one traced training step (forward + backward) of minilm-l6 under `dtype`."""
    model = tk.attach_head(tk.load_backbone("minilm-l6", dtype=dtype), "classification", labels=LABELS, seed=0)
    core, loss = model.core, model.task.loss()
    inputs, targets = next(iter(text_dataset(model.preprocessor, split_segments(texts[:32], 1),
                                             model.task.encode_labels(labels[:32]), batch_size=32)))

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            value = loss(targets, core(inputs, training=True))
        return tape.gradient(value, core.trainable_variables)

    graph = step.get_concrete_function(inputs, targets).graph
    counts = collections.Counter()
    for operation in graph.get_operations():
        kind = operation.type
        if kind in MATRIX_PRODUCTS or kind in WATCHED:
            name = "matrix products" if kind in MATRIX_PRODUCTS else kind
            counts[name, operation.outputs[0].dtype.name] += 1
        elif kind == "Cast":
            counts["Cast", f"{operation.inputs[0].dtype.name}->{operation.outputs[0].dtype.name}"] += 1
    return [{"policy": dtype or "float32", "op": name, "dtype": kind, "count": count}
            for (name, kind), count in sorted(counts.items())]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 training texts, 1 seed, small test sets")
    parser.add_argument("--datasets", default="imdb,sst2")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--imdb-train", type=int, default=2000)
    parser.add_argument("--imdb-test", type=int, default=2000)
    parser.add_argument("--sst2-train", type=int, default=8000)
    parser.add_argument("--sst2-test", type=int, default=872)
    parser.add_argument("--runs", default=RUNS, help="file of finished runs, read to skip them and appended to "
                        "(empty: none)")
    args = parser.parse_args()
    if args.quick:
        args.imdb_train = args.sst2_train = 64
        args.imdb_test = args.sst2_test = 64
        args.seeds, args.runs = "0", ""
    settings = args.settings.split(",")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    print(f"command: python benchmarks/fast_settings.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}")
    # The CPU is part of a run's settings: speed ratios only compare runs of one kind of machine.
    log = RunLog(args.runs, {"cpu": cpu_name(), **{key: getattr(args, key) for key in
                                                   ("epochs", "imdb_train", "imdb_test", "sst2_train", "sst2_test")}})
    rows = []
    for dataset in args.datasets.split(","):
        train, test = load(dataset, args)
        for setting in settings:
            for seed in seeds:
                key = {"dataset": dataset, "setting": setting, "seed": seed}
                if key not in log:
                    log.record(key, run(setting, seed, train, test, args, dataset))
                    print(f"run: {key} {log[key]}", flush=True)
        rows += rows_of(dataset, settings, seeds, log)
    print_table(f"Fast settings against float32 random batches: minilm-l6, {args.epochs} epoch(s), IMDB "
                f"{args.imdb_train} train / {args.imdb_test} test, SST-2 {args.sst2_train} train / {args.sst2_test} "
                f"dev (imdb-example: the README example's sample and settings), mean ± std over {len(seeds)} seed(s)",
                rows)
    texts, labels = load("imdb", args)[0]
    print_table("Ops of one traced training step (batch 32 of IMDB, before graph rewrites)",
                op_census(None, texts, labels) + op_census("mixed_bfloat16", texts, labels))


if __name__ == "__main__":
    main()
