"""Fine-tune a pretrained BERT on IMDB movie reviews, offline, in about five lines of tunekit.

The classic "classify text with BERT" recipe, done right: raw review strings in (no integer ids), a
softmax head with a matching loss, Keras 3 training that really updates the encoder, then evaluation,
save, export and prediction.

    python examples/imdb_sentiment.py                      # defaults: minilm-l6, the shipped IMDB sample
    python examples/imdb_sentiment.py --data-dir aclImdb --train-size 25000 --seq-length 256 --epochs 3

Defaults are sized to finish in about 8 minutes on a 2-core CPU (see README.md for the measured run).
"""

import argparse
import time

import tunekit as tk


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm-l6",
                        help="short name, TF Hub URL, SavedModel or Hugging Face folder (default: minilm-l6)")
    parser.add_argument("--data-dir", default=None,
                        help="aclImdb folder or aclImdb_v1.tar.gz (default: the sample shipped with tunekit)")
    parser.add_argument("--train-size", type=int, default=3000, help="training reviews (default: 3000, the whole shipped sample)")
    parser.add_argument("--test-size", type=int, default=1000, help="held-out test reviews (default: 1000)")
    parser.add_argument("--seq-length", type=int, default=256, help="tokens per review (default: 256)")
    parser.add_argument("--truncation", default="head_tail", choices=["head", "head_tail"],
                        help="which tokens of long reviews to keep (default: head_tail, the start and the end)")
    parser.add_argument("--long-texts", default="truncate", choices=["truncate", "windows"],
                        help="how evaluation and prediction read reviews longer than --seq-length: truncate them, or "
                             "read them whole in windows (default: truncate)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training reviews (default: 1)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--output-dir", default="imdb_run", help="where the model and the export go")
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    train_texts, train_labels = tk.datasets.imdb("train", data_dir=args.data_dir, limit=args.train_size)
    test_texts, test_labels = tk.datasets.imdb("test", data_dir=args.data_dir, limit=args.test_size)
    print(f"{len(train_texts)} training reviews, {len(test_texts)} held-out test reviews")

    # --- the five lines ---
    backbone = tk.load_backbone(args.backbone, seq_length=args.seq_length, truncation=args.truncation,
                                long_texts=args.long_texts)
    model = tk.attach_head(backbone, "classification", labels=tk.datasets.IMDB_LABELS, seed=0)
    trainer = tk.Trainer(model, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size, seed=0)
    trainer.fit(train_texts, train_labels)
    metrics = trainer.evaluate(test_texts, test_labels)
    # ----------------------

    print("held-out test:", ", ".join(f"{name} {value:.4f}" for name, value in metrics.items() if isinstance(value, float)))
    trainer.save(f"{args.output_dir}/model")
    trainer.export(f"{args.output_dir}/serving")
    print(f"saved {args.output_dir}/model (tunekit.load_model) and {args.output_dir}/serving (SavedModel, raw strings)")
    reviews = ["A moving, beautifully acted film. I loved every minute of it.",
               "Two hours of my life I will never get back. Dull plot, wooden acting."]
    for review, label in zip(reviews, trainer.predict_labels(reviews)):
        print(f"{label:>8}: {review}")
    print(f"total time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
