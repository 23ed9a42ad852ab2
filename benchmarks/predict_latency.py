"""Latency of in-process prediction on a few texts, side by side with the exported SavedModel.

    python benchmarks/predict_latency.py                   # minilm-l6, seq 128, 50 calls per cell (~8 min, 2 cores)
    python benchmarks/predict_latency.py --calls 5         # a smoke run (~2 min)

Per call (median and 95th percentile of `--calls` calls, after one warm-up call) for 1, 8 and 64 texts:
`trainer.predict`, `trainer.predict_labels`, a saved and reloaded model (`tunekit.load_model(...).predict`), and the
exported SavedModel (`tunekit.export_model`, then `tf.saved_model.load(...).signatures["serving_default"]`), with
the same texts. The calls of one size are interleaved (round after round, each contender once per round), so a
noisy neighbour slows all contenders alike. `trainer.predict` and `model.predict` run batches of 32 (the
defaults); the export takes the whole call as one batch.

Two tables: IMDB test reviews (the sample shipped with tunekit; long, every review fills all 128 positions, so
every contender computes the same padded length) and SST-2 dev sentences (../shared/data/sst2; short: tunekit cuts
each batch to its longest sentence, the export pads to 128). The model is `minilm-l6` with a freshly attached
classification head (untrained: latency does not depend on the weights' values). For reference, the `tf.data`
path (what `trainer.predict` did on every call before, and still does above 1,024 texts) is timed on 1 and
64 texts with `--reference-calls` calls.
"""

import argparse
import os
import tempfile

import numpy as np
import tensorflow as tf
from common import Stopwatch, machine, print_table, shared_data

import tunekit as tk
from tunekit.inputs.text_batches import text_dataset

SIZES = (1, 8, 64)


def interleaved_latencies(contenders, calls):
    """{name: [seconds per call]}: one warm-up call each, then `calls` rounds of one call per contender."""
    for run in contenders.values():
        run()
    times = {name: [] for name in contenders}
    for _ in range(calls):
        for name, run in contenders.items():
            with Stopwatch() as watch:
                run()
            times[name].append(watch.seconds)
    return times


def table(texts, trainer, loaded, serve, calls, reference_calls):
    rows = []
    for size in SIZES:
        batch = texts[:size]
        contenders = {
            "exported SavedModel": lambda: serve(text=tf.constant(batch)),
            "trainer.predict": lambda: trainer.predict(batch),
            "trainer.predict_labels": lambda: trainer.predict_labels(batch),
            "load_model(...).predict": lambda: loaded.predict(batch),
        }
        times = interleaved_latencies(contenders, calls)
        if size in (1, 64) and reference_calls:
            model = trainer.model
            times["tf.data path (before)"] = interleaved_latencies({"reference": lambda: model.core.predict(
                text_dataset(model.preprocessor, [batch], batch_size=trainer.batch_size), verbose=0)},
                reference_calls)["reference"]
        export_median = np.median(times["exported SavedModel"])
        for name, seconds in times.items():
            rows.append({
                "texts": size,
                "call": name,
                "calls": len(seconds),
                "median_ms": round(1000 * float(np.median(seconds)), 1),
                "p95_ms": round(1000 * float(np.percentile(seconds, 95)), 1),
                "x_export": round(float(np.median(seconds) / export_median), 2),
            })
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--calls", type=int, default=50, help="timed calls per contender and size")
    parser.add_argument("--reference-calls", type=int, default=5, help="timed calls of the tf.data path (0: skip)")
    args = parser.parse_args()

    imdb_texts, _ = tk.datasets.imdb("test")
    sst2_texts, _ = tk.datasets.sst2("validation", data_dir=shared_data("sst2"))
    rng = np.random.default_rng(0)
    imdb_texts = [imdb_texts[i] for i in rng.permutation(len(imdb_texts))[:max(SIZES)]]
    sst2_texts = [sst2_texts[i] for i in rng.permutation(len(sst2_texts))[:max(SIZES)]]
    print(f"machine: {machine()}")

    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length)
    model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
    trainer = tk.Trainer(model)
    with tempfile.TemporaryDirectory() as directory:
        tk.save_model(model, os.path.join(directory, "model"))
        loaded = tk.load_model(os.path.join(directory, "model"))
        tk.export_model(model, os.path.join(directory, "export"))
        serve = tf.saved_model.load(os.path.join(directory, "export")).signatures["serving_default"]
        print(f"{args.backbone}, seq_length {args.seq_length}, freshly attached head (untrained), "
              f"{args.calls} calls per cell; trainer/model batches of {trainer.batch_size}")
        for name, texts in (("IMDB test reviews", imdb_texts), ("SST-2 dev sentences", sst2_texts)):
            lengths = [int(ids.sum()) for ids in model.preprocessor(tf.constant(texts))["input_mask"].numpy()]
            print_table(f"Per-call latency, {name} (word-pieces per text: mean {np.mean(lengths):.1f} of "
                        f"{args.seq_length})", table(texts, trainer, loaded, serve, args.calls, args.reference_calls))


if __name__ == "__main__":
    main()
