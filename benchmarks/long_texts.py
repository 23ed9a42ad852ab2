"""Long reviews: read them whole in overlapping windows, or truncate them? Accuracy against the tokens each way reads.

    python benchmarks/long_texts.py                 # IMDB 3,000 train / 2,000 test reviews, seq_length 128 and 256 (~50 min)
    python benchmarks/long_texts.py --quick         # 64 / 64 reviews: checks the script (~3 min)

For each training `seq_length` (`--seq-lengths`), minilm-l6 is fine-tuned once with tunekit's defaults
(`load_backbone("minilm-l6", seq_length=n)`: head+tail truncation; `Trainer(model, seed=0)`: 3 epochs) on a sample of
official IMDB training reviews, then the same model reads the test reviews in each way:

- `truncate n`: head+tail truncation to `n` tokens, as trained (one row per review; tunekit's `predict`);
- `truncate 2n`: the same model given longer rows (a fairer budget for the windows, which read more);
- `windows n, stride s`: every review split into windows of `n` tokens starting every `s` word-pieces (the last
  one moved back to end on the review's last word-piece: `tunekit.inputs.text_windows`), the review's probabilities
  the mean of its windows'. Stride `(n - 2) // 2` overlaps windows by half; `n - 2` does not overlap them.

Every way runs through the same code (packed rows, batches of 32 cut to their longest row, `model.core.predict`),
so the seconds compare. Reported: accuracy on all test reviews and on those longer than the training budget
(`n - 2` word-pieces: the reviews truncation cuts), the rows and the tokens read (the cost, with the seconds).

Reads ../shared/data/imdb (TUNEKIT_SHARED_DATA moves it); writes benchmarks/results/long_texts-cpu-2core.txt
(`--record`). Run it alone on the machine.
"""

import argparse
import io
import os
import sys
import time

import tensorflow as tf
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.inputs.text_batches import trim_to_longest
from tunekit.inputs.text_windows import pool_windows, window_inputs
from tunekit.preprocessing.packing import flatten_words

LABELS = ["negative", "positive"]
RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "long_texts-cpu-2core.txt")
ENCODE_CHUNK = 256


def encode(model, texts, way):
    """Texts -> (packed rows, the review of each row) for one way of reading them."""
    kind, seq_length, stride = way
    parts, offset = [], 0
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = tf.constant(texts[start:start + ENCODE_CHUNK])
        if kind == "truncate":
            inputs = model.preprocessor.encode([chunk], seq_length)
            review = tf.range(tf.shape(chunk)[0], dtype=tf.int32)
        else:
            inputs, review = window_inputs(model.preprocessor, chunk, seq_length=seq_length, stride=stride)
        parts.append((inputs, review + offset))
        offset += len(texts[start:start + ENCODE_CHUNK])
    inputs = {key: tf.concat([part[0][key] for part in parts], 0) for key in parts[0][0]}
    return inputs, tf.concat([part[1] for part in parts], 0)


def read(model, texts, labels, long_rows, way):
    """Accuracy (all, long reviews), rows, tokens and seconds of one way of reading the test reviews."""
    with Stopwatch() as watch:
        inputs, review = encode(model, texts, way)
        rows = tf.data.Dataset.from_tensor_slices(inputs).batch(32).map(trim_to_longest)
        probabilities = pool_windows(model.core.predict(rows, verbose=0), review, len(texts)).numpy()
    correct = probabilities.argmax(axis=1) == labels
    kind, seq_length, stride = way
    name = f"truncate {seq_length}" if kind == "truncate" else f"windows {seq_length}, stride {stride}"
    return {"read as": name, "accuracy": round(float(correct.mean()), 4),
            "accuracy_long": round(float(correct[long_rows].mean()), 4), "rows": int(review.shape[0]),
            "tokens": int(tf.reduce_sum(inputs["input_mask"])), "seconds": round(watch.seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 train / 64 test reviews, seq_length 128 only")
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--seq-lengths", default="128,256")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", default=RECORD, help="results file to write (empty: none)")
    args = parser.parse_args()
    if args.quick:
        args.train_size, args.test_size, args.seq_lengths, args.record = 64, 64, "128", ""
    out = io.StringIO()
    header = (f"command: python benchmarks/long_texts.py {' '.join(sys.argv[1:])}".rstrip()
              + f"\nmachine: {machine()}\ndate: {time.strftime('%Y-%m-%d')}\n")
    print(header, end="", flush=True)
    out.write(header)
    data_dir = shared_data("imdb")
    train = tk.datasets.imdb("train", data_dir=data_dir, limit=args.train_size, seed=0)
    test = tk.datasets.imdb("test", data_dir=data_dir, limit=args.test_size, seed=0)
    texts = list(test[0])
    rows = []
    for seq_length in [int(n) for n in args.seq_lengths.split(",")]:
        model = tk.attach_head(tk.load_backbone("minilm-l6", seq_length=seq_length), "classification",
                               labels=LABELS, seed=args.seed)
        trainer = tk.Trainer(model, seed=args.seed, verbose=0)
        with Stopwatch() as fit:
            trainer.fit(list(train[0]), train[1])
        labels = model.task.encode_labels(test[1])
        budget = seq_length - 2
        long_rows = flatten_words(model.preprocessor.tokenize(tf.constant(texts))).row_lengths().numpy() > budget
        ways = [("truncate", seq_length, None), ("truncate", min(2 * seq_length, 512), None),
                ("windows", seq_length, budget // 2), ("windows", seq_length, budget)]
        for way in ways:
            row = {"trained at": seq_length, "fit seconds": round(fit.seconds, 1),
                   "long reviews": f"{int(long_rows.sum())}/{len(texts)}", **read(model, texts, labels, long_rows, way)}
            rows.append(row)
            print(f"run: {row}", flush=True)
    print_table(f"Long IMDB reviews: truncation or windows, minilm-l6 trained 3 epochs on {args.train_size} reviews "
                f"(tunekit defaults, seed {args.seed}), {args.test_size} official test reviews", rows, out)
    if args.record:
        os.makedirs(os.path.dirname(args.record), exist_ok=True)
        temporary = args.record + ".tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(out.getvalue())
        os.replace(temporary, args.record)


if __name__ == "__main__":
    main()
