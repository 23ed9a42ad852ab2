"""SST-2 with the offline pretrained MiniLM: fine-tune on a train subset, report accuracy on the GLUE dev split.

    python benchmarks/sst2_minilm.py                  # 20,000 train sentences, 1 epoch (about 20 min on 2 cores)
    python benchmarks/sst2_minilm.py --train-size 67349 --epochs 3

Reads ../shared/data/sst2 (set TUNEKIT_SHARED_DATA to move it). SST-2 sentences average 13 word-pieces, so
the batches padded to their own longest sentence are far shorter than seq_length; the script prints the
average padded length tunekit trained on next to seq_length.
"""

import argparse

import numpy as np
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.training.data import split_segments, text_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()

    data_dir = shared_data("sst2")
    train_texts, train_labels = tk.datasets.sst2("train", data_dir=data_dir, limit=args.train_size)
    dev_texts, dev_labels = tk.datasets.sst2("validation", data_dir=data_dir)
    print(f"machine: {machine()}")
    print(f"train {len(train_texts)} sentences, dev {len(dev_texts)} sentences (GLUE SST-2)")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    batches = text_dataset(model.preprocessor, split_segments(train_texts, 1), batch_size=args.batch_size)
    padded_length = np.mean([batch["input_word_ids"].shape[1] for batch in batches])
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0, verbose=2)
    with Stopwatch() as training:
        trainer.fit(train_texts, train_labels)
    with Stopwatch() as testing:
        metrics = trainer.evaluate(dev_texts, dev_labels)
    print_table(f"SST-2, {args.backbone}, seq_length {args.seq_length}, {args.epochs} epoch(s)", [{
        "train_sentences": len(train_texts),
        "dev_sentences": len(dev_texts),
        "mean_padded_length": round(float(padded_length), 1),
        "train_s": round(training.seconds, 1),
        "train_examples_per_s": round(len(train_texts) * args.epochs / training.seconds, 2),
        "dev_s": round(testing.seconds, 1),
        **{name: round(value, 4) for name, value in metrics.items()},
    }])


if __name__ == "__main__":
    main()
