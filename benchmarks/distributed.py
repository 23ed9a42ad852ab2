"""Training throughput on 1 vs 2 worker processes (MultiWorkerMirroredStrategy), side by side.

    python benchmarks/distributed.py                        # MiniLM, 2,048 SST-2 train sentences, global batch 32
    python benchmarks/distributed.py --train-size 512 --backbone small_bert/bert_en_uncased_L-2_H-128_A-2

Runs the same training script once as one process and once under `python -m tunekit.distributed --workers 2`
(both on this machine, same global batch and seed), and reports training examples per second (the `fit` call's
wall clock, after model loading) and the final training loss of each. On one small machine, 2 workers share the
same cores and add an all-reduce of every gradient per step, so no gain is expected here; a real gain needs one
machine (or accelerator) per worker and a network fast enough for the gradient all-reduce (MiniLM: 22 M float32
gradients, ~90 MB per step).

Reads ../shared/data/sst2 (set TUNEKIT_SHARED_DATA to move it).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import Stopwatch, machine, print_table, shared_data


def train(args):
    """One worker's run (called under the launcher or alone): trains, and the chief writes its timing."""
    import tunekit as tk
    from tunekit.distributed import is_chief, worker_count

    texts, labels = tk.datasets.sst2("train", data_dir=shared_data("sst2"), limit=args.train_size, seed=0)
    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-4, epochs=1, batch_size=args.batch_size, seed=0, verbose=0)
    with Stopwatch() as training:
        history = trainer.fit(texts, labels)
    if is_chief():
        with open(args.result, "w", encoding="utf-8") as file:
            json.dump({"workers": worker_count(), "train_s": training.seconds, "examples": len(texts),
                       "loss": history.history["loss"][-1]}, file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=2048)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--result", help=argparse.SUPPRESS)  # set when this script runs as a worker
    args = parser.parse_args()
    if args.result:
        return train(args)

    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            result = os.path.join(folder, f"{workers}.json")
            script = [os.path.abspath(__file__), "--backbone", args.backbone, "--train-size", str(args.train_size),
                      "--seq-length", str(args.seq_length), "--batch-size", str(args.batch_size), "--result", result]
            launcher = ["-m", "tunekit.distributed", "--workers", str(workers)] if workers > 1 else []
            subprocess.run([sys.executable, *launcher, *script], check=True)
            with open(result, encoding="utf-8") as file:
                run = json.load(file)
            rows.append({"workers": run["workers"], "global_batch": args.batch_size,
                         "per_worker_batch": args.batch_size // run["workers"], "train_examples": run["examples"],
                         "train_s": round(run["train_s"], 1),
                         "examples_per_s": round(run["examples"] / run["train_s"], 1),
                         "final_loss": round(run["loss"], 4)})
    print_table(f"Training throughput, {args.backbone}, SST-2, seq_length {args.seq_length}, 1 epoch, "
                f"1 vs 2 local workers", rows)


if __name__ == "__main__":
    main()
