"""A training script run as a child process by the resume and multi-worker tests (not a test module itself).

    python train_script.py OUTPUT.npz [--backup DIR] [--dropout RATE] [--epochs N] [--layer-decay D]
                                      [--examples N] [--batch-size N] [--save DIR] [--export DIR]
                                      [--encoder DIR --preprocessor DIR] [--augment]

Trains a tiny native BERT classifier (seeded; with `--encoder`, on that TF Hub encoder and its preprocessor; with
`--augment`, on texts rewritten every epoch by `AUGMENTATION`) and
saves the final weights to OUTPUT.npz (under several workers, each worker saves OUTPUT-worker<I>.npz); `--save DIR` /
`--export DIR` then call `trainer.save(DIR)` / `trainer.export(DIR)` (in every worker, as an unchanged
single-process script does). It prints `step N` after every optimizer step, so a test can kill it at a chosen step.
"""

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sample_texts import VOCAB, sentiment_texts  # noqa: E402

import tunekit as tk  # noqa: E402
from tunekit.backbones.bert import BertEncoder  # noqa: E402
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor  # noqa: E402


class PrintSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(f"step {int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))}", flush=True)


def published_backbone(encoder_dir, preprocessor_dir, dropout):
    """A TF Hub encoder exported by Model Garden, loaded as tunekit's native `BertEncoder` with its published
    preprocessor, its dropout rates (from the export) replaced by `dropout`."""
    backbone = tk.load_backbone(encoder_dir, preprocessor=preprocessor_dir, seq_length=16)
    converted = backbone.encoder
    if not isinstance(converted, BertEncoder):
        raise TypeError(f"{encoder_dir} did not load as a native BertEncoder: {backbone.describe()}")
    encoder = BertEncoder.from_config({**converted.get_config(), "dropout": dropout, "attention_dropout": dropout})
    encoder({name: np.zeros([1, 16], np.int32) for name in ("input_word_ids", "input_mask", "input_type_ids")})
    encoder.set_weights(converted.get_weights())
    return dataclasses.replace(backbone, encoder=encoder)


def augmentation():
    """What `--augment` trains with: random swaps, then deletions (each epoch a new rewrite of the texts)."""
    return tk.augment.Compose([tk.augment.RandomSwap(0.3), tk.augment.RandomDeletion(0.2)])


def build(*, backup_dir=None, dropout=0.1, epochs=3, batch_size=8, callbacks=(), layer_decay=None, encoder=None,
          preprocessor=None, augment=None):
    """The seeded model and its trainer: a tiny native BERT, or the TF Hub encoder in the folder `encoder` (with
    the preprocessor in the folder `preprocessor`)."""
    keras.utils.set_random_seed(0)
    if encoder is None:
        encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2,
                              intermediate_size=32, max_sequence_length=32, dropout=dropout, attention_dropout=dropout)
        backbone = tk.Backbone(encoder=encoder, preprocessor=WordPiecePreprocessor(VOCAB, seq_length=16), name="tiny",
                               pooling="mean")
    else:
        backbone = published_backbone(encoder, preprocessor, dropout)
    model = tk.attach_head(backbone, "classification", num_classes=2, pooling="mean", dropout=dropout, seed=0)
    return tk.Trainer(model, learning_rate=1e-3, epochs=epochs, batch_size=batch_size, seed=0, verbose=0,
                      backup_dir=backup_dir, backup_every=2, callbacks=list(callbacks), layer_decay=layer_decay,
                      augment=augment)


def train(output=None, *, examples=64, **settings):
    """Builds the seeded tiny model (`build`'s settings), trains it; returns the trainer (and saves the weights to
    `output`)."""
    trainer = build(**settings)
    model = trainer.model
    texts, labels = sentiment_texts(examples, seed=4)
    trainer.fit(texts, labels)
    if output is not None:
        np.savez(output, *[v.numpy() for v in model.core.weights])
    return trainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--backup")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--layer-decay", type=float)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--save")
    parser.add_argument("--export")
    parser.add_argument("--encoder", help="a TF Hub encoder folder (Model Garden's export) instead of the tiny BERT")
    parser.add_argument("--preprocessor", help="the preprocessor folder of --encoder")
    parser.add_argument("--augment", action="store_true", help="train on texts rewritten by augmentation()")
    args = parser.parse_args()
    from tunekit.distributed import read_tf_config

    cluster = read_tf_config()
    output = args.output if cluster is None else args.output.replace(".npz", f"-worker{cluster['index']}.npz")
    trainer = train(output, examples=args.examples, backup_dir=args.backup, dropout=args.dropout, epochs=args.epochs,
                    batch_size=args.batch_size, callbacks=[PrintSteps()], layer_decay=args.layer_decay,
                    encoder=args.encoder, preprocessor=args.preprocessor,
                    augment=augmentation() if args.augment else None)
    if args.save:
        trainer.save(args.save)
    if args.export:
        trainer.export(args.export)


if __name__ == "__main__":
    main()
