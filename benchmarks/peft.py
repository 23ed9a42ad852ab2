"""Parameter-efficient fine-tuning vs full fine-tuning of minilm-l6 on SST-2 and IMDB (tunekit.peft).

    python benchmarks/peft.py            # SST-2 6,000 -> 872 dev; IMDB 2,000 -> 2,000 test (~20 min on 2 cores)
    python benchmarks/peft.py --quick    # a few hundred examples, to check the script (~4 min)

Methods (same data, seed 0, batch 32, seq_length 128 head+tail, AdamW with warmup and linear decay): full
fine-tuning; freezing the embeddings + bottom 3 or 5 of the 6 layers (`tunekit.peft.freeze_layers`); LoRA rank 8,
alpha 16 on query/value and on all six projections (`tunekit.peft.enable_lora`). Each method gets its own learning
rate and as many epochs as fit in the wall-clock time of one epoch of full fine-tuning (the table shows both and
the training seconds). SST-2 batches group sentences of similar length (`group_by_length=True`), IMDB batches are
random. Each method runs in its own process, so `peak_rss_mb` is that method's (load + train + evaluate).
`saved_mb`: the adapter directory (`save_adapter`) for LoRA, the whole model (`save_model`) otherwise.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

from common import BatchClock, Stopwatch, machine, print_table, shared_data

METHODS = {
    # name: (setup, learning rate, epochs)
    "full": ({}, 1e-4, 1),
    "freeze-3": ({"freeze": 3}, 1e-4, 1),
    "freeze-5": ({"freeze": 5}, 2e-4, 2),
    "lora-r8-qv": ({"lora": ("query", "value")}, 2e-3, 1),
    "lora-r8-all": ({"lora": "all"}, 2e-3, 1),
}
SIZES = {"full": {"sst2": (6000, None), "imdb": (2000, 2000)}, "quick": {"sst2": (320, 200), "imdb": (160, 160)}}
SEQ_LENGTH, BATCH_SIZE = 128, 32


def load_data(dataset, sizes):
    import tunekit as tk

    train_size, test_size = sizes[dataset]
    if dataset == "sst2":
        folder = shared_data("sst2")
        return (tk.datasets.sst2("train", data_dir=folder, limit=train_size),
                tk.datasets.sst2("validation", data_dir=folder, limit=test_size))
    folder = shared_data("imdb")
    return (tk.datasets.imdb("train", data_dir=folder, limit=train_size),
            tk.datasets.imdb("test", data_dir=folder, limit=test_size))


def directory_mb(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 2**20


def run_method(dataset, method, sizes):
    """Trains and evaluates one method in this process; returns its table row."""
    import numpy as np

    import tunekit as tk
    import tunekit.peft

    setup, learning_rate, epochs = METHODS[method]
    (train_texts, train_labels), (test_texts, test_labels) = load_data(dataset, sizes)
    backbone = tk.load_backbone("minilm-l6", seq_length=SEQ_LENGTH)
    if "freeze" in setup:
        tk.peft.freeze_layers(backbone, setup["freeze"])
    if "lora" in setup:
        backbone = tk.peft.enable_lora(backbone, rank=8, alpha=16, targets=setup["lora"], seed=0)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)

    clock = BatchClock()
    trainer = tk.Trainer(model, learning_rate=learning_rate, epochs=epochs, batch_size=BATCH_SIZE, seed=0,
                         verbose=0, callbacks=[clock], group_by_length=dataset == "sst2")
    with Stopwatch() as training:
        trainer.fit(train_texts, train_labels)
    metrics = trainer.evaluate(test_texts, test_labels)
    with tempfile.TemporaryDirectory() as folder:
        saved = os.path.join(folder, "saved")
        if "lora" in setup:
            tk.peft.save_adapter(model, saved)
        else:
            tk.save_model(model, saved)
        saved_mb = directory_mb(saved)
    steady_examples = len(train_texts) * epochs - BATCH_SIZE  # leaves out the first batch (tracing, warm-up)
    trainable, total = (int(sum(np.prod(weight.shape) for weight in weights))
                        for weights in (model.core.trainable_weights, model.core.weights))
    return {
        "method": method,
        "learning_rate": learning_rate,
        "epochs": epochs,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": round(100 * trainable / total, 3),
        "train_s": round(training.seconds, 1),
        "steady_ex_per_s": round(steady_examples / (clock.ends[-1] - clock.ends[0]), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "accuracy": round(float(metrics["accuracy"]), 4),
        "saved_mb": round(saved_mb, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred examples, to check the script")
    parser.add_argument("--dataset", choices=("sst2", "imdb", "both"), default="both")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--sst2-train", type=int, help="SST-2 training sentences (default 6,000; quick 320)")
    parser.add_argument("--imdb-train", type=int, help="IMDB training reviews (default 2,000; quick 160)")
    parser.add_argument("--imdb-test", type=int, help="IMDB test reviews (default 2,000; quick 160)")
    parser.add_argument("--worker", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = dict(SIZES["quick" if args.quick else "full"])
    sizes["sst2"] = (args.sst2_train or sizes["sst2"][0], sizes["sst2"][1])
    sizes["imdb"] = (args.imdb_train or sizes["imdb"][0], args.imdb_test or sizes["imdb"][1])
    if args.worker:
        print("row:", json.dumps(run_method(*args.worker, sizes)), flush=True)
        return

    print(f"machine: {machine()}")
    for dataset in ("sst2", "imdb") if args.dataset == "both" else (args.dataset,):
        (train_texts, _), (test_texts, _) = load_data(dataset, sizes)
        rows = []
        for method in args.methods:
            command = [sys.executable, os.path.abspath(__file__), "--worker", dataset, method,
                       "--sst2-train", str(sizes["sst2"][0]), "--imdb-train", str(sizes["imdb"][0]),
                       "--imdb-test", str(sizes["imdb"][1])] + (["--quick"] if args.quick else [])
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in result.stdout.splitlines() if line.startswith("row: ")]
            if result.returncode or not lines:
                raise SystemExit(f"{dataset} {method} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][len("row: "):]))
            print(f"  {dataset} {method}: {rows[-1]}", flush=True)
        full = next((row for row in rows if row["method"] == "full"), None)
        if full is not None:
            for row in rows:
                row["x_full_steady"] = round(row["steady_ex_per_s"] / full["steady_ex_per_s"], 2)
                row["points_vs_full"] = round(100 * (row["accuracy"] - full["accuracy"]), 1)
        name = {"sst2": "SST-2 (GLUE dev)", "imdb": "IMDB (official test sample)"}[dataset]
        print_table(f"{name}: minilm-l6, {len(train_texts)} train -> {len(test_texts)} test, seq_length {SEQ_LENGTH}, "
                    f"batch {BATCH_SIZE}, seed 0; epochs/learning rate per method (budget: one epoch of full)", rows)


if __name__ == "__main__":
    main()
