"""Compression for deployment: float32 SavedModel vs LiteRT int8 / float16 vs Keras int8 vs layer-dropped encoders.

    python benchmarks/compression.py            # IMDB (1,000 train reviews, 2,000 test, seq 256) and SST-2 (dev)
    python benchmarks/compression.py --quick    # a few minutes: small train and test sets

From the same fine-tuned `minilm-l6` models (6 layers; and copies keeping the bottom 4, 3 and 2 layers, fine-tuned
the same way), every artifact is measured in a fresh Python process, as a server would load it: accuracy on the
test texts, size on disk, load time, predictions/s at batch 1 (`--batch1-texts` texts one at a time) and at batch
64 (the whole test set), and the peak RSS of that process (TensorFlow included: the tensorflow-text kernels of
the LiteRT models come with it). Rows:
- `float32`: the SavedModel of `tunekit.export_model`;
- `int8`, `float16`: `tunekit.deploy.export_tflite` of the same model (run by ai-edge-litert);
- `keras-int8`: Keras' own `model.quantize("int8")` of the same model, run as a compiled `tf.function`
  (measured on `--keras-int8-texts` texts only: it is slow on CPU);
- `layers-k`: the float32 SavedModel of a model whose encoder kept the bottom k layers before fine-tuning
  (`tunekit.backbones.layer_dropping.drop_layers`); `layers-k-int8`: its int8 LiteRT model.

Reads ../shared/data/imdb and ../shared/data/sst2 (set TUNEKIT_SHARED_DATA to move them).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH = 64


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small train/test sets, for a check of the script")
    parser.add_argument("--imdb-train-size", type=int, default=1000)
    parser.add_argument("--imdb-test-size", type=int, default=2000)
    parser.add_argument("--sst2-train-size", type=int, default=5000)
    parser.add_argument("--keep", type=int, nargs="*", default=[4, 3, 2], help="layers kept by the smaller encoders")
    parser.add_argument("--int8-keep", type=int, nargs="*", default=[3],
                        help="smaller encoders also measured as int8 LiteRT models")
    parser.add_argument("--manifest-texts", type=int, default=200,
                        help="test texts export_tflite evaluates for the manifest's accuracy delta")
    parser.add_argument("--batch1-texts", type=int, default=64)
    parser.add_argument("--keras-int8-texts", type=int, default=256)
    parser.add_argument("--workdir", default=None, help="where the artifacts go (default: a temporary folder)")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one artifact, in a child
    args = parser.parse_args()
    if args.measure:
        print("result:", json.dumps(measure(json.loads(args.measure))))
        return
    if args.quick:
        args.imdb_train_size, args.imdb_test_size, args.sst2_train_size = 128, 256, 256
        args.batch1_texts, args.keras_int8_texts, args.keep, args.int8_keep = 16, 64, [2], [2]

    from common import machine, print_table, shared_data

    import tunekit as tk

    workdir = args.workdir or tempfile.mkdtemp(prefix="tunekit-compression-")
    print(f"command: python benchmarks/compression.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}; artifacts in {workdir}")
    imdb_dir, sst2_dir = shared_data("imdb"), shared_data("sst2")
    suites = [
        {"name": "imdb", "title": "IMDB", "seq_length": 256, "epochs": 1, "learning_rate": 1e-4,
         "train": tk.datasets.imdb("train", data_dir=imdb_dir, limit=args.imdb_train_size),
         "test": tk.datasets.imdb("test", data_dir=imdb_dir, limit=args.imdb_test_size),
         "loader": {"dataset": "imdb", "split": "test", "data_dir": imdb_dir, "limit": args.imdb_test_size}},
        {"name": "sst2", "title": "SST-2", "seq_length": 64, "epochs": 1, "learning_rate": 1e-4,
         "train": tk.datasets.sst2("train", data_dir=sst2_dir, limit=args.sst2_train_size),
         "test": tk.datasets.sst2("validation", data_dir=sst2_dir, limit=256 if args.quick else None),
         "loader": {"dataset": "sst2", "split": "validation", "data_dir": sst2_dir,
                    "limit": 256 if args.quick else None}},
    ]
    for suite in suites:
        rows = run_suite(suite, args, workdir, tk)
        title = (f"{suite['title']}: minilm-l6 fine-tuned on {len(suite['train'][0])} train texts, seq_length "
                 f"{suite['seq_length']}, {len(suite['test'][0])} test texts, 2-core CPU")
        print_table(title, rows)
        sys.stdout.flush()
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def run_suite(suite, args, workdir, tk):
    from tunekit.backbones.layer_dropping import drop_layers
    from tunekit.deploy import export_tflite

    name = suite["name"]
    train_texts, train_labels = suite["train"]
    test_texts, test_labels = suite["test"]
    artifacts = []
    for keep in [None, *args.keep]:
        backbone = tk.load_backbone("minilm-l6", seq_length=suite["seq_length"])
        if keep is not None:
            backbone = drop_layers(backbone, keep=keep)
        model = tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)
        trainer = tk.Trainer(model, learning_rate=suite["learning_rate"], epochs=suite["epochs"], batch_size=16,
                             seed=0, verbose=0, group_by_length=name == "sst2")
        started = time.perf_counter()
        trainer.fit(train_texts, train_labels)
        train_s = time.perf_counter() - started
        label = "float32" if keep is None else f"layers-{keep}"
        print(f"{name}: fine-tuned {label} in {train_s:.0f} s", flush=True)
        export_dir = os.path.join(workdir, f"{name}-{label}")
        tk.export_model(model, export_dir)
        artifacts.append({"artifact": label, "kind": "artifact", "path": export_dir, "train_s": round(train_s, 1)})
        if keep is None:
            saved_dir = os.path.join(workdir, f"{name}-saved")
            tk.save_model(model, saved_dir)
        compressions = ("int8", "float16") if keep is None else ("int8",) if keep in args.int8_keep else ()
        for compression in compressions:
            started = time.perf_counter()
            path = export_tflite(model, os.path.join(workdir, f"{name}-{label}-{compression}"),
                                 compression=compression,
                                 validation_data=(test_texts[:args.manifest_texts], test_labels[:args.manifest_texts]),
                                 base=f"minilm-l6{'' if keep is None else f'[:{keep}]'} fine-tuned on {name}")
            print(f"{name}: {label} {compression} export in {time.perf_counter() - started:.0f} s", flush=True)
            artifacts.append({"artifact": compression if keep is None else f"{label}-{compression}",
                              "kind": "artifact", "path": path})
        if keep is None:
            artifacts.append({"artifact": "keras-int8", "kind": "keras-int8", "path": saved_dir,
                              "limit": args.keras_int8_texts})
    rows = []
    for artifact in artifacts:
        job = {**artifact, "loader": suite["loader"], "batch1_texts": args.batch1_texts,
               "subset": args.keras_int8_texts}
        output = subprocess.run([sys.executable, __file__, "--measure", json.dumps(job)], capture_output=True,
                                text=True, check=False, cwd=os.path.dirname(os.path.abspath(__file__)))
        lines = [line for line in output.stdout.splitlines() if line.startswith("result: ")]
        if output.returncode or not lines:
            raise SystemExit(f"measuring {artifact['artifact']} failed:\n{output.stderr[-3000:]}")
        result = json.loads(lines[-1][len("result: "):])
        rows.append({"artifact": artifact["artifact"], **result,
                     **({"train_s": artifact["train_s"]} if "train_s" in artifact else {})})
        print(f"{name}: measured {artifact['artifact']}: {result}", flush=True)
    reference = rows[0]
    for row in rows:
        # keras-int8 runs on the first texts only: its delta is against float32 on those same texts.
        baseline = reference["accuracy_subset"] if row["eval_texts"] < reference["eval_texts"] else reference["accuracy"]
        row["accuracy_delta_points"] = round(100 * (row["accuracy"] - baseline), 2)
        row["size_vs_float32"] = round(row["size_bytes"] / reference["size_bytes"], 3)
        row["speedup_batch1"] = round(row["pred_per_s_batch1"] / reference["pred_per_s_batch1"], 2)
        row["speedup_batch64"] = round(row["pred_per_s_batch64"] / reference["pred_per_s_batch64"], 2)
    for row in rows:
        row.pop("accuracy_subset")
    return rows


def measure(job):
    """In a fresh process: load one artifact, time it, and evaluate it on the test texts."""
    import tunekit as tk

    loader = job["loader"]
    load = tk.datasets.imdb if loader["dataset"] == "imdb" else tk.datasets.sst2
    texts, labels = load(loader["split"], data_dir=loader["data_dir"], limit=loader["limit"])
    if job.get("limit"):
        texts, labels = texts[: job["limit"]], labels[: job["limit"]]
    started = time.perf_counter()
    if job["kind"] == "keras-int8":
        predict, size = _keras_int8(job["path"])
    else:
        from tunekit.deploy import load_artifact

        artifact = load_artifact(job["path"])
        predict = lambda batch: artifact.predict(batch, batch_size=BATCH)["class_id"]
        size = _folder_size(job["path"])
    predict(texts[:1])  # the first call traces / allocates: part of loading
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    for text in texts[: job["batch1_texts"]]:
        predict([text])
    batch1 = job["batch1_texts"] / (time.perf_counter() - started)
    started = time.perf_counter()
    predicted = np.concatenate([predict(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)])
    batch64 = len(texts) / (time.perf_counter() - started)
    peak_rss = _peak_rss_bytes()
    correct = predicted == np.asarray(labels)
    return {
        "accuracy": round(float(np.mean(correct)), 4),
        "accuracy_subset": float(np.mean(correct[: job["subset"]])),
        "eval_texts": len(texts),
        "size_bytes": int(size),
        "load_s": round(load_s, 2),
        "pred_per_s_batch1": round(batch1, 2),
        "pred_per_s_batch64": round(batch64, 2),
        "peak_rss_mb": round(peak_rss / 2**20),
    }


def _keras_int8(saved_dir):
    """Keras' own int8 quantization of the saved float32 model -> (predict function, size of its weights)."""
    import tensorflow as tf

    import tunekit as tk

    model = tk.load_model(saved_dir)
    model.quantize("int8")
    size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    serve = tf.function(lambda texts: model(texts, training=False), input_signature=[tf.TensorSpec([None], tf.string)])
    return (lambda batch: np.argmax(serve(tf.constant(batch)).numpy(), axis=-1)), size


def _peak_rss_bytes():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not carry the parent's over exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _folder_size(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


if __name__ == "__main__":
    main()
