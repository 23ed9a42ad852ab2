"""SST-2 with the offline pretrained MiniLM: fine-tune on a train subset, report accuracy on the GLUE dev split.

    python benchmarks/sst2_minilm.py                  # all 67,349 train sentences, 1 epoch, length-grouped batches
    python benchmarks/sst2_minilm.py --train-size 20000 --no-group-by-length   # a subset, random batches

Reads ../shared/data/sst2 (set TUNEKIT_SHARED_DATA to move it). SST-2 sentences average 13 word-pieces, so
the batches padded to their own longest sentence are far shorter than seq_length, and shorter still when
batches group sentences of similar length (this script's default; `Trainer`'s is random batches,
`group_by_length=False`); the script prints the mean padded length of both batchings next to seq_length.
"""

import argparse

import numpy as np
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.inputs.text_batches import split_segments, text_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=None, help="default: all 67,349")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--no-group-by-length", action="store_true", help="random batches (more padding)")
    args = parser.parse_args()

    data_dir = shared_data("sst2")
    train_texts, train_labels = tk.datasets.sst2("train", data_dir=data_dir, limit=args.train_size)
    dev_texts, dev_labels = tk.datasets.sst2("validation", data_dir=data_dir)
    print(f"machine: {machine()}")
    print(f"train {len(train_texts)} sentences, dev {len(dev_texts)} sentences (GLUE SST-2)")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0, verbose=2, group_by_length=not args.no_group_by_length)
    padded = {}
    segments, labels = split_segments(train_texts, 1), trainer.task.encode_labels(train_labels)
    for grouped in (False, True):
        batches = text_dataset(model.preprocessor, segments, labels, batch_size=args.batch_size, shuffle=True, seed=0,
                               by_length=grouped)
        padded[grouped] = np.mean([ids["input_word_ids"].shape[1] for ids, _ in batches])
    with Stopwatch() as training:
        trainer.fit(train_texts, train_labels)
    with Stopwatch() as testing:
        metrics = trainer.evaluate(dev_texts, dev_labels)
    print_table(f"SST-2, {args.backbone}, seq_length {args.seq_length}, {args.epochs} epoch(s)", [{
        "train_sentences": len(train_texts),
        "dev_sentences": len(dev_texts),
        "group_by_length": trainer.group_by_length,
        "padded_length_random_batches": round(float(padded[False]), 1),
        "padded_length_grouped_batches": round(float(padded[True]), 1),
        "train_s": round(training.seconds, 1),
        "train_examples_per_s": round(len(train_texts) * args.epochs / training.seconds, 2),
        "dev_s": round(testing.seconds, 1),
        **{name: round(value, 4) for name, value in metrics.items() if isinstance(value, float)},
    }])


if __name__ == "__main__":
    main()
