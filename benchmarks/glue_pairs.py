"""Sentence-pair GLUE tasks with the offline pretrained MiniLM: fine-tune on MRPC, STS-B or RTE, report on dev.

    python benchmarks/glue_pairs.py                     # MRPC: all 3,668 train pairs, 2 epochs (~13 min, 2 cores)
    python benchmarks/glue_pairs.py --task stsb         # STS-B: all 5,749 train pairs, 2 epochs (~14 min)
    python benchmarks/glue_pairs.py --task rte          # RTE: all 2,490 train pairs, 3 epochs (~15 min)
    python benchmarks/glue_pairs.py --train-size 320 --dev-size 64 --epochs 1    # a smoke run (~1 min)

Reads ../shared/data/{mrpc,stsb,rte} (set TUNEKIT_SHARED_DATA to move them). Pairs are packed
`[CLS] a [SEP] b [SEP]` (round-robin truncation to seq_length). MRPC and RTE are classification (accuracy, and F1
of the positive class: paraphrase / entailment); STS-B is regression on the 0-5 score (Pearson and Spearman
correlation). GLUE's test labels are not public, so, as in papers, the dev split is reported. Prints sizes,
the mean padded length trained on, time and throughput of each phase, and the dev metrics.

Sizing: measured on this project's 2-core CPU while other jobs shared it (batch 32, seq_length 128), training ran
at about 10 pairs/s on MRPC (batches padded to 85 word-pieces on average), 15 on STS-B (73) and 9 on RTE (128),
after ~20-30 s of tracing; the default epochs per task aim at about 15 minutes.
"""

import argparse

import numpy as np
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.inputs.text_batches import split_segments, text_dataset

LABELS = {"mrpc": ["not_paraphrase", "paraphrase"], "rte": ["not_entailment", "entailment"], "stsb": None}
REPORTED = {"mrpc": ("accuracy", "f1"), "rte": ("accuracy", "f1"), "stsb": ("pearson", "spearman")}
DEFAULT_EPOCHS = {"mrpc": 2, "stsb": 2, "rte": 3}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mrpc", choices=sorted(LABELS))
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=None, help="train pairs (default: all)")
    parser.add_argument("--dev-size", type=int, default=None, help="dev pairs (default: all)")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="default: 2 for MRPC and STS-B, 3 for RTE")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    epochs = args.epochs or DEFAULT_EPOCHS[args.task]

    data_dir = shared_data(args.task)
    train_pairs, train_labels = tk.datasets.sentence_pairs(args.task, "train", data_dir=data_dir, limit=args.train_size)
    dev_pairs, dev_labels = tk.datasets.sentence_pairs(args.task, "validation", data_dir=data_dir, limit=args.dev_size)
    print(f"machine: {machine()}")
    print(f"{args.task}: train {len(train_labels)} pairs, dev {len(dev_labels)} pairs (GLUE)")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    if LABELS[args.task] is None:
        model = tk.attach_head(backbone, "regression", text_pairs=True, seed=0)
    else:
        model = tk.attach_head(backbone, "classification", labels=LABELS[args.task], text_pairs=True, seed=0)
    batches = text_dataset(model.preprocessor, split_segments(train_pairs, 2), batch_size=args.batch_size)
    padded_length = np.mean([batch["input_word_ids"].shape[1] for batch in batches])
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=epochs, batch_size=args.batch_size,
                         seed=0, verbose=2)
    with Stopwatch() as training:
        trainer.fit(train_pairs, train_labels)
    with Stopwatch() as testing:
        metrics = trainer.evaluate(dev_pairs, dev_labels)
    print_table(f"{args.task.upper()} (dev), {args.backbone}, seq_length {args.seq_length}, {epochs} epoch(s)", [{
        "train_pairs": len(train_labels),
        "dev_pairs": len(dev_labels),
        "mean_padded_length": round(float(padded_length), 1),
        "train_s": round(training.seconds, 1),
        "train_pairs_per_s": round(len(train_labels) * epochs / training.seconds, 2),
        "dev_s": round(testing.seconds, 1),
        **{name: round(metrics[name], 4) for name in ("loss", *REPORTED[args.task])},
    }])


if __name__ == "__main__":
    main()
