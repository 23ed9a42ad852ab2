"""Is distillation worth building? A layer-dropped student trained on a teacher's labels of unlabeled texts.

    python benchmarks/distillation.py            # IMDB: 1,000 labelled + 4,000 unlabelled reviews, seq 256
    python benchmarks/distillation.py --quick    # a few minutes

The setting of `benchmarks/compression.py`: few labelled texts, a 6-layer `minilm-l6` teacher fine-tuned on them,
and a student that keeps the bottom `--keep` layers (`drop_layers`). Rows, all evaluated on the same test reviews:
- `teacher`: 6 layers, fine-tuned on the labelled texts;
- `student, labels only`: the student fine-tuned on the same labelled texts (what compression.py measures);
- `student, distilled (hard)`: the student fine-tuned on the labelled texts plus the unlabelled ones with the
  teacher's predicted labels (hard-label distillation, i.e. pseudo-labelling);
- `student, distilled (soft)`: the student trained by `tk.distill` on the same texts: the teacher's probabilities at
  `--temperature` for every text, plus the true label (weight `--alpha`) on the labelled ones;
- `student, all labels` (`--with-oracle`): the student on the true labels of all those texts, the ceiling.

Reads ../shared/data/imdb (set TUNEKIT_SHARED_DATA to move it).
"""

import argparse
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets, for a check of the script")
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--unlabelled", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--keep", type=int, default=3, help="layers the student keeps (of 6)")
    parser.add_argument("--temperature", type=float, default=2.0, help="of the soft targets")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the true labels in soft distillation")
    parser.add_argument("--with-oracle", action="store_true", help="also train the student on all true labels")
    args = parser.parse_args()
    if args.quick:
        args.labelled, args.unlabelled, args.test_size = 128, 256, 256

    from common import machine, print_table, shared_data

    import tunekit as tk
    from tunekit.backbones.layer_dropping import drop_layers

    print(f"command: python benchmarks/distillation.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine()}")
    data_dir = shared_data("imdb")
    texts, labels = tk.datasets.imdb("train", data_dir=data_dir, limit=args.labelled + args.unlabelled)
    texts, labels = list(texts), np.asarray(labels)
    order = np.random.default_rng(0).permutation(len(texts))
    labelled, unlabelled = order[:args.labelled], order[args.labelled:]
    test_texts, test_labels = tk.datasets.imdb("test", data_dir=data_dir, limit=args.test_size)

    # Random batches, as in the recorded results (length grouping became the default after them).
    options = {"learning_rate": 1e-4, "epochs": 1, "batch_size": 16, "seed": 0, "verbose": 0,
               "group_by_length": False}

    def model(keep):
        backbone = tk.load_backbone("minilm-l6", seq_length=256)
        if keep is not None:
            backbone = drop_layers(backbone, keep=keep)
        return tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0)

    def train(keep, train_texts, train_labels):
        trainer = tk.Trainer(model(keep), **options)
        started = time.perf_counter()
        trainer.fit(train_texts, train_labels)
        return trainer, time.perf_counter() - started

    def row(name, trainer, train_s, examples):
        metrics = trainer.evaluate(test_texts, test_labels)
        result = {"model": name, "train_texts": examples, "accuracy": round(metrics["accuracy"], 4),
                  "f1": round(metrics["f1"], 4), "train_s": round(train_s, 1)}
        print(f"measured: {result}", flush=True)
        return result

    labelled_texts = [texts[i] for i in labelled]
    rows = []
    teacher, seconds = train(None, labelled_texts, labels[labelled])
    rows.append(row("teacher (6 layers)", teacher, seconds, len(labelled)))
    student, seconds = train(args.keep, labelled_texts, labels[labelled])
    rows.append(row(f"student ({args.keep} layers), labels only", student, seconds, len(labelled)))

    unlabelled_texts = [texts[i] for i in unlabelled]
    started = time.perf_counter()
    teacher_labels = np.argmax(teacher.predict(unlabelled_texts), axis=-1)
    labelling_s = time.perf_counter() - started
    agreement = float(np.mean(teacher_labels == labels[unlabelled]))
    print(f"teacher labelled {len(unlabelled)} texts in {labelling_s:.0f} s; {agreement:.3f} agree with the truth",
          flush=True)
    student, seconds = train(args.keep, labelled_texts + unlabelled_texts,
                             np.concatenate([labels[labelled], teacher_labels]))
    rows.append(row(f"student ({args.keep} layers), distilled (hard)", student, seconds + labelling_s, len(order)))
    started = time.perf_counter()
    student = tk.distill(teacher, model(args.keep), labelled_texts + unlabelled_texts,
                         list(labels[labelled]) + [None] * len(unlabelled), temperature=args.temperature,
                         alpha=args.alpha, **options)
    rows.append(row(f"student ({args.keep} layers), distilled (soft, T={args.temperature:g}, alpha={args.alpha:g})",
                    student, time.perf_counter() - started, len(order)))
    if args.with_oracle:
        student, seconds = train(args.keep, labelled_texts + unlabelled_texts, labels[order])
        rows.append(row(f"student ({args.keep} layers), all labels", student, seconds, len(order)))
    baseline = rows[1]["accuracy"]
    for result in rows:
        result["vs_student_points"] = round(100 * (result["accuracy"] - baseline), 2)
    print_table(f"IMDB distillation: {len(labelled)} labelled + {len(unlabelled)} unlabelled train reviews, seq 256, "
                f"{len(test_texts)} test reviews, 2-core CPU", rows)


if __name__ == "__main__":
    main()
