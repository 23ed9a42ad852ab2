"""A training script run as a child process by tests/backbones/test_model_garden.py (not a test module itself).

    python train_on_encoder.py ENCODER_DIR OUTPUT.npz [--backup DIR]

Fine-tunes a classifier on the TF Hub encoder in ENCODER_DIR (dropout on, seeded, 3 epochs of 48 texts, batch 8)
and saves the final weights to OUTPUT.npz. It prints `step N` after every optimizer step, so a test can kill it at
a chosen step.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sample_texts import sentiment_texts  # noqa: E402

import tunekit as tk  # noqa: E402

STEPS = 18


class PrintSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(f"step {int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("encoder")
    parser.add_argument("output")
    parser.add_argument("--backup")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    backbone = tk.load_backbone(args.encoder, seq_length=16)
    model = tk.attach_head(backbone, "classification", num_classes=2, dropout=0.1, seed=0)
    trainer = tk.Trainer(model, learning_rate=1e-3, epochs=3, batch_size=8, seed=0, verbose=0,
                         backup_dir=args.backup, backup_every=2, callbacks=[PrintSteps()])
    trainer.fit(*sentiment_texts(48, seed=4))
    np.savez(args.output, *[v.numpy() for v in model.core.weights])


if __name__ == "__main__":
    main()
