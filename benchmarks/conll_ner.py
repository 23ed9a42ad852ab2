"""CoNLL-2003 English NER with the offline pretrained MiniLM: fine-tune on the train split (or a random subset),
report entity-level precision, recall and F1 (conlleval's) on the official test split (eng.testb).

    python benchmarks/conll_ner.py                          # all 14,041 train sentences, 2 epochs (~22 min, 2 cores)
    python benchmarks/conll_ner.py --train-size 5000 --epochs 1         # a subset (~6 min)
    python benchmarks/conll_ner.py --train-size 320 --test-size 200     # a smoke run (~1 min)

Reads ../shared/data/conll2003/iob2/{train,test}.txt.gz, or with --iob1 the shared-task files eng.train /
eng.testb (set TUNEKIT_SHARED_DATA to move the folder). The train subset is drawn at random (seeded), since the
files run document by document. `minilm-l6` is an uncased model: it never sees the capitals that mark most
names, so expect F1 well below the ~0.91 of cased BERT-base. Prints sizes (sentences, words, chunks), the mean
padded length trained on, time and throughput of each phase, the overall scores and the scores per entity type.

Sizing: measured on this project's 2-core CPU while other jobs shared it, training ran at about 25 sentences/s
(batch 32, batches padded to 56 word-pieces on average) after ~15 s of tracing, and testing at about 40
sentences/s; aligning all 14,041 train sentences to word-pieces takes ~3 s.
"""

import argparse
import os

import numpy as np
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.metrics import entity_metrics
from tunekit.inputs.word_batches import token_dataset

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=None, help="train sentences (default: all 14,041)")
    parser.add_argument("--test-size", type=int, default=None, help="test sentences (default: all 3,453)")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--iob1", action="store_true", help="read the IOB1 files eng.train / eng.testb")
    args = parser.parse_args()

    data_dir = shared_data("conll2003")
    train_file, test_file = ("eng.train.gz", "eng.testb.gz") if args.iob1 else ("iob2/train.txt.gz", "iob2/test.txt.gz")
    train_words, train_tags = tk.datasets.read_conll(os.path.join(data_dir, train_file))
    test_words, test_tags = tk.datasets.read_conll(os.path.join(data_dir, test_file))
    chosen = np.random.default_rng(0).permutation(len(train_words))[: args.train_size]
    train_words, train_tags = [train_words[i] for i in chosen], [train_tags[i] for i in chosen]
    test_words, test_tags = test_words[: args.test_size], test_tags[: args.test_size]
    print(f"machine: {machine()}")
    print(f"train {len(train_words)} sentences ({sum(map(len, train_words))} words), test {len(test_words)} "
          f"sentences ({sum(map(len, test_words))} words), {train_file} / {test_file}")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    model = tk.attach_head(backbone, "token_classification", labels=TAGS, seed=0)
    batches, chunks = token_dataset(model.preprocessor, train_words, batch_size=args.batch_size, shuffle=True, seed=0)
    padded_length = np.mean([inputs["input_word_ids"].shape[1] for inputs, _, _ in batches])
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
                         seed=0, verbose=2)
    with Stopwatch() as training:
        trainer.fit(train_words, train_tags)
    with Stopwatch() as testing:
        predicted = trainer.predict_labels(test_words)
    metrics = entity_metrics(test_tags, predicted)
    title = f"CoNLL-2003 NER ({'IOB1' if args.iob1 else 'IOB2'}), {args.backbone}, seq_length {args.seq_length}"
    print_table(f"{title}, {args.epochs} epoch(s)", [{
        "train_sentences": len(train_words),
        "train_chunks": chunks,
        "test_sentences": len(test_words),
        "mean_padded_length": round(float(padded_length), 1),
        "train_s": round(training.seconds, 1),
        "train_sentences_per_s": round(len(train_words) * args.epochs / training.seconds, 2),
        "test_s": round(testing.seconds, 1),
        "test_sentences_per_s": round(len(test_words) / testing.seconds, 2),
        **{name: round(metrics[name], 4) for name in ("precision", "recall", "f1", "token_accuracy")},
    }])
    print_table("per entity type (test)", [
        {"type": name, **{key: round(value, 4) for key, value in scores.items()}}
        for name, scores in metrics["per_type"].items()
    ])


if __name__ == "__main__":
    main()
