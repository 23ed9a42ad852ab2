"""IMDB sentiment with the offline pretrained MiniLM: fine-tune, then evaluate on the FULL official test split.

    python benchmarks/imdb_minilm.py                         # 3,000 official train reviews, all 25,000 test reviews
    python benchmarks/imdb_minilm.py --train-size 25000 --epochs 2 --seq-length 512   # the full recipe (GPU)
    python benchmarks/imdb_minilm.py --train-size 25000 --dtype mixed_bfloat16        # all train reviews, 1 epoch

Reads the official splits from ../shared/data/imdb (set TUNEKIT_SHARED_DATA to move it). Prints train/test
sizes, time and throughput of each phase, and the test metrics, with the example's settings by default so
that the example's number on the shipped 1,000-review sample can be checked against the whole test split.
"""

import argparse

from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--test-size", type=int, default=None, help="default: all 25,000")
    parser.add_argument("--seq-length", type=int, default=256)
    parser.add_argument("--truncation", default="head_tail", choices=["head", "head_tail"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--dtype", default=None, help='load_backbone(dtype=...), e.g. "mixed_bfloat16" '
                        "(default: float32)")
    parser.add_argument("--no-group-by-length", action="store_true", help="random batches (more padding)")
    args = parser.parse_args()

    data_dir = shared_data("imdb")
    train_texts, train_labels = tk.datasets.imdb("train", data_dir=data_dir, limit=args.train_size)
    test_texts, test_labels = tk.datasets.imdb("test", data_dir=data_dir, limit=args.test_size)
    print(f"machine: {machine()}")
    print(f"train {len(train_texts)} reviews, test {len(test_texts)} reviews (official splits)")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length, truncation=args.truncation,
                                dtype=args.dtype)
    model = tk.attach_head(backbone, "classification", labels=tk.datasets.IMDB_LABELS, seed=0)
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0, verbose=2, group_by_length=not args.no_group_by_length)
    with Stopwatch() as training:
        trainer.fit(train_texts, train_labels)
    with Stopwatch() as testing:
        metrics = trainer.evaluate(test_texts, test_labels)
    print_table(f"IMDB, {args.backbone}, seq_length {args.seq_length} ({args.truncation}), {args.epochs} epoch(s), "
                f"{args.dtype or 'float32'}, {'random' if args.no_group_by_length else 'length-grouped'} batches", [{
        "train_reviews": len(train_texts),
        "test_reviews": len(test_texts),
        "train_s": round(training.seconds, 1),
        "train_examples_per_s": round(len(train_texts) * args.epochs / training.seconds, 2),
        "test_s": round(testing.seconds, 1),
        "test_examples_per_s": round(len(test_texts) / testing.seconds, 2),
        **{name: round(value, 4) for name, value in metrics.items() if isinstance(value, float)},
    }])


if __name__ == "__main__":
    main()
