"""Less labelled data: which remedy helps, by how much, and where it hurts (mean ± std over seeds).

    python benchmarks/small_data.py                   # IMDB + SST-2, 100/300/1,000 labels, 3 seeds (hours)
    python benchmarks/small_data.py --quick           # tiny sizes, 2 seeds, a few methods: checks the script
    python benchmarks/small_data.py --datasets imdb --sizes 300 --methods plain,self-training

All rows fine-tune minilm-l6 (batch 16 in random order, AdamW 1e-4 with warmup and linear decay, seq_length 128 on
IMDB (head + tail) and 64 on SST-2, 5 epochs under 1,000 labels, else 3) on the same labelled sample of each seed,
and are evaluated on the same test texts (IMDB: 2,000 official test reviews; SST-2: the 872 GLUE dev sentences). Methods:
- `plain`: fine-tuning on the labels;
- `synonyms`, `insertion`, `swap`, `deletion`, `cutoff`: plus one augmentation at rate 0.1 (`tk.augment`;
  synonyms from the encoder's embeddings);
- `self-training`: plus `--unlabeled` unlabelled train texts (`fit(..., unlabeled_texts=...)`: one round, a student
  trained afresh for 2 epochs on the labels plus the 40 % most confident pseudo-labels, class-balanced, none under
  probability 0.9); `self-training-noisy`: the same with `augment=RandomDeletion(0.1)`, so that the teacher and the
  student train on noised texts while the pseudo-labels come from clean ones (Noisy Student, Xie et al. 2020);
- `distill-hard` / `distill-soft`: a 3-layer student (`drop_layers` of minilm-l6) trained from the plain 6-layer
  model of the same seed on the labelled + unlabelled texts for 2 epochs (5,000 texts or more; self-training's
  student also trains 2 epochs): on the teacher's labels (hard) or its probabilities at temperature 2 with alpha 0.5
  (`tk.distill`). The `student-labels-only` row is that student on the labels alone, with the epochs of plain fine-tuning.
  `self-distillation`: the same as `distill-soft` with a fresh 6-layer student (self-training on soft pseudo-labels).

Prints a table (accuracy mean ± std, wall time per run) and one JSON line. Reads ../shared/data/{imdb,sst2}
(TUNEKIT_SHARED_DATA moves it). Run it alone on the machine.

The whole grid takes days on a 2-core CPU, so every finished run (one method, size and seed) is appended to
`--runs` (benchmarks/results/small_data-runs.jsonl) and skipped when the script runs again with the same settings:
the grid fills over several runs (`--datasets`, `--sizes`, `--methods` pick a part), and the table is made from
every recorded run of the asked grid, with how many seeds each row has (`--report` prints it without running).
Runs of earlier self-training designs stay in that file under their own method names (`self-training-v1-...`,
`-v2-`, `-v3-`; docs/less-labelled-data.md describes them); the script no longer runs them.

Each seed draws its labelled texts, then its `--unlabeled` texts, from a pool of exactly size + `--unlabeled` train
texts (the `train_pool` setting), so a run pairs with the plain run of its seed and size whichever command ran it.
Runs recorded before 2026-12-05 drew from `max(--sizes) + --unlabeled` texts, which depended on the other sizes
asked for: each has that pool as its `train_pool` setting, and counts only where it equals size + `--unlabeled`.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

METHODS = ("plain", "synonyms", "insertion", "swap", "deletion", "cutoff", "self-training", "self-training-noisy",
           "student-labels-only", "distill-hard", "distill-soft", "self-distillation")
SELF_TRAINING = ("self-training", "self-training-noisy")
SEQ_LENGTH = {"imdb": 128, "sst2": 64}
DISTILLED_STUDENT_EPOCHS = 2


def load(dataset, train_pool, args, tk, shared_data):
    """(train texts, labels) of `train_pool` train texts drawn with seed 0, (test texts, labels)."""
    data_dir = shared_data(dataset)
    if dataset == "imdb":
        train = tk.datasets.imdb("train", data_dir=data_dir, limit=train_pool, seed=0)
        test = tk.datasets.imdb("test", data_dir=data_dir, limit=args.test_size, seed=0)
    else:
        train = tk.datasets.sst2("train", data_dir=data_dir, limit=train_pool, seed=0)
        test = tk.datasets.sst2("validation", data_dir=data_dir)  # all 872 dev sentences
    return (list(train[0]), np.asarray(train[1])), (list(test[0]), np.asarray(test[1]))


def run(method, dataset, size, seed, train, test, args, tk):
    """Trains one row's model; returns (test accuracy, seconds, details: self-training's pseudo-label counts)."""
    from tunekit import augment
    from tunekit.backbones.layer_dropping import drop_layers

    texts, labels = train
    order = np.random.default_rng(seed).permutation(len(texts))
    labelled = [int(i) for i in order[:size]]
    unlabeled = [texts[int(i)] for i in order[size:size + args.unlabeled]]
    labelled_texts, labelled_labels = [texts[i] for i in labelled], labels[labelled]
    epochs = 5 if size < 1000 else 3
    # Random batches (group_by_length=False): the default when the grid started, kept so that every row compares
    # like with like and the recorded runs stay valid.
    options = {"learning_rate": 1e-4, "epochs": epochs, "batch_size": 16, "seed": seed, "verbose": 0,
               "group_by_length": False}

    def model(keep=None):
        backbone = tk.load_backbone("minilm-l6", seq_length=SEQ_LENGTH[dataset])
        if keep is not None:
            backbone = drop_layers(backbone, keep=keep)
        return tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=seed)

    started = time.perf_counter()
    if method in ("plain", "synonyms", "insertion", "swap", "deletion", "cutoff", *SELF_TRAINING):
        student = model()
        augmentation = None
        if method in ("synonyms", "insertion"):
            synonyms = augment.EmbeddingSynonyms(tk.load_backbone("minilm-l6"))
            augmentation = (augment.SynonymReplacement if method == "synonyms" else augment.RandomInsertion)(
                0.1, synonyms)
        elif method in ("swap", "deletion", "cutoff", "self-training-noisy"):
            augmentation = {"swap": augment.RandomSwap, "deletion": augment.RandomDeletion,
                            "cutoff": augment.SpanCutoff, "self-training-noisy": augment.RandomDeletion}[method](0.1)
        trainer = tk.Trainer(student, augment=augmentation, **options)
        extra = {}
        if method in SELF_TRAINING:
            extra = {"unlabeled_texts": unlabeled, "confidence_threshold": 0.9, "self_training_rounds": 1,
                     "self_training_epochs": 2, "self_training_fraction": 0.4}
        trainer.fit(labelled_texts, labelled_labels, **extra)
    elif method == "student-labels-only":
        trainer = tk.Trainer(model(keep=3), **options)
        trainer.fit(labelled_texts, labelled_labels)
    else:
        teacher = model()
        tk.Trainer(teacher, **options).fit(labelled_texts, labelled_labels)
        student = model(keep=None if method == "self-distillation" else 3)
        options["epochs"] = DISTILLED_STUDENT_EPOCHS
        if method == "distill-hard":
            teacher_labels = np.argmax(teacher.predict(unlabeled), axis=-1)
            trainer = tk.Trainer(student, **options)
            trainer.fit(labelled_texts + unlabeled, np.concatenate([labelled_labels, teacher_labels]))
        else:
            trainer = tk.distill(teacher, student, labelled_texts + unlabeled,
                                 list(labelled_labels) + [None] * len(unlabeled), temperature=2.0, alpha=0.5,
                                 **options)
    seconds = time.perf_counter() - started
    details = {}
    if method in SELF_TRAINING:
        details["pseudo_labelled"] = [round_["pseudo_labelled"] for round_ in trainer.self_training]
    return trainer.evaluate(*test)["accuracy"], seconds, details


RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "small_data-runs.jsonl")


def table_rows(log, dataset, size, methods, seeds):
    """The table's rows of one dataset and size from the recorded runs (methods without any are left out);
    `vs_plain_points` is the mean difference to plain fine-tuning of the same seeds."""

    def runs_of(method):
        keys = [{"dataset": dataset, "labels": size, "method": method, "seed": seed} for seed in seeds]
        return {key["seed"]: log[key] for key in keys if key in log}

    plain, rows = runs_of("plain"), []
    for method in methods:
        runs = runs_of(method)
        if not runs:
            continue
        accuracies = [run["accuracy"] for run in runs.values()]
        paired = [100 * (run["accuracy"] - plain[seed]["accuracy"]) for seed, run in runs.items() if seed in plain]
        rows.append({"dataset": dataset, "labels": size, "method": method,
                     "accuracy_mean": round(statistics.mean(accuracies), 4),
                     "accuracy_std": round(statistics.stdev(accuracies), 4) if len(runs) > 1 else 0.0,
                     "vs_plain_points": round(statistics.mean(paired), 2) if paired else None,
                     "per_seed_points": " ".join(f"{difference:+.2f}" for difference in paired),
                     "seconds_per_run": round(statistics.mean(run["seconds"] for run in runs.values()), 1),
                     "seeds": len(runs),
                     "cpu": ", ".join(sorted({run.get("cpu", "not recorded") for run in runs.values()}))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 seeds, 3 methods")
    parser.add_argument("--datasets", default="imdb,sst2")
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--unlabeled", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--report", action="store_true", help="only print the table of the recorded runs")
    parser.add_argument("--runs", default=RUNS, help="file of finished runs, read to skip them and appended to "
                        "(empty: none)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.unlabeled, args.test_size = "32", "0,1", 64, 128
        args.methods, args.runs = "plain,swap,self-training,distill-soft", ""
    args.sizes = [int(size) for size in args.sizes.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")

    from common import RunLog, cpu_name, machine, print_table, shared_data

    import tunekit as tk

    print(f"command: python benchmarks/small_data.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}")
    rows = []
    for dataset in args.datasets.split(","):
        for size in args.sizes:
            train_pool = size + args.unlabeled
            log = RunLog(args.runs, {"dataset": dataset, "unlabeled": args.unlabeled,
                                     "seq_length": SEQ_LENGTH[dataset], "train_pool": train_pool,
                                     **({"test_size": args.test_size} if dataset == "imdb" else {})})
            missing = [(method, seed) for method in methods for seed in seeds
                       if {"dataset": dataset, "labels": size, "method": method, "seed": seed} not in log]
            if missing and not args.report:
                train, test = load(dataset, train_pool, args, tk, shared_data)
                for method, seed in missing:
                    key = {"dataset": dataset, "labels": size, "method": method, "seed": seed}
                    accuracy, seconds, details = run(method, dataset, size, seed, train, test, args, tk)
                    log.record(key, {"accuracy": round(accuracy, 4), "seconds": round(seconds, 1),
                                     "cpu": cpu_name(), **details})  # accuracy is machine-independent, seconds not
                    print(f"run: {key} accuracy {accuracy:.4f} in {seconds:.0f} s {details or ''}".rstrip(),
                          flush=True)
            rows += table_rows(log, dataset, size, methods, seeds)
    print_table("Less labelled data: test accuracy, mean ± std over seeds (minilm-l6)", rows)


if __name__ == "__main__":
    main()
