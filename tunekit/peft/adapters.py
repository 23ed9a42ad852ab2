"""Adapter directories: a LoRA model's trained weights only, with what identifies the base they belong to.

An adapter directory holds `adapter.npz` (the LoRA factors and the head's weights) and `tunekit.json`:
`{"format_version", "kind": "adapter", "base": {"name", "weights_sha256", "num_layers", "hidden_size"},
"lora": {"rank", "alpha", "targets", "dropout"}, "task", "num_segments", "pooling", "head_dropout",
"seq_length", "weights_file_sha256", "files", "manifest_sha256"}` (see `tunekit.formats.write_manifest`). Loading
checks all of it before changing anything (an edited `tunekit.json`, e.g. another alpha or pooling, fails its
checksum), and refuses an adapter for another base (weights hash), or, when loading into an existing LoRA model,
with other targets, rank or alpha.

Example, on the tiny test encoder `encoder_dir` (a real one: `tk.load_backbone("minilm-l6")`): two adapters on
one backbone, each stored on its own:

>>> import os
>>> backbone = tk.load_backbone(encoder_dir, seq_length=16)
>>> sentiment = tk.attach_head(tk.peft.enable_lora(backbone), "classification", labels=["neg", "pos"])
>>> topic = tk.attach_head(tk.peft.enable_lora(backbone), "classification", labels=["sport", "politics", "arts"])
>>> # ... train both with tk.Trainer, then store only what trained:
>>> path = tk.peft.save_adapter(sentiment, "sentiment_adapter")
>>> sorted(os.listdir(path))
['adapter.npz', 'tunekit.json']
>>> path = tk.peft.save_adapter(topic, "topic_adapter")

Later, on a freshly loaded base backbone (here the same one):

>>> sentiment = tk.peft.load_adapter("sentiment_adapter", backbone)
>>> topic = tk.peft.load_adapter("topic_adapter", backbone)     # same encoder, no copy
>>> sentiment.encoder.encoder is topic.encoder.encoder
True
>>> topic.task.labels
['sport', 'politics', 'arts']
"""

import hashlib
import io
import os
import zipfile

import numpy as np

from tunekit.backbones.backbone import Backbone
from tunekit.backbones.bert import BertEncoder
from tunekit.files import user_path, write_atomically
from tunekit.formats import ADAPTER_WEIGHTS_FILE as WEIGHTS_FILE
from tunekit.formats import FORMAT_VERSIONS, MARKER_FILE, read_manifest, write_manifest
from tunekit.heads import task_from_config
from tunekit.model import TextModel, build_core, check_finite_weights
from tunekit.peft.lora import (
    LoraEncoder,
    enable_lora,
    head_options,
    head_weights,
    lora_encoder_of,
    weights_fingerprint,
)

REQUIRED_KEYS = ("format_version", "kind", "base", "lora", "task", "num_segments", "pooling", "head_dropout",
                 "weights_file_sha256")
LORA_KEYS = ("rank", "alpha", "targets", "dropout")
BASE_KEYS = ("name", "weights_sha256", "num_layers", "hidden_size")


def _factor_name(index, target, which):
    return f"lora/{index}/{target}/{which}"


def save_adapter(model, path):
    """Writes the adapters and head of a LoRA `TextModel` to the directory `path` (atomically); returns its path.

    Only what trained is stored (minilm-l6, rank 8: 0.3 MB on query/value, 1.3 MB on all projections, against
    87 MB for the model's weights).
    """
    lora = lora_encoder_of(model)
    check_finite_weights(model, "save the adapter of")
    if weights_fingerprint(lora.encoder) != lora.base_fingerprint:
        raise ValueError("The base encoder's weights changed since enable_lora (was it trained unfrozen?): the "
                         "adapter would not match the base it was trained with. Re-create the LoRA model.")
    arrays = {}
    for (index, target), (a, b) in lora.factors.items():
        arrays[_factor_name(index, target, "a")] = np.asarray(a.numpy())
        arrays[_factor_name(index, target, "b")] = np.asarray(b.numpy())
    for position, weight in enumerate(head_weights(model.core, lora)):
        arrays[f"head/{position}"] = np.asarray(weight.numpy())
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    pooling, dropout = head_options(model.core)
    info = {
        "format_version": FORMAT_VERSIONS["adapter"],
        "kind": "adapter",
        "base": {"name": lora.base_name, "weights_sha256": lora.base_fingerprint,
                 "num_layers": lora.encoder.num_layers, "hidden_size": lora.encoder.hidden_size},
        "lora": {"rank": lora.rank, "alpha": lora.alpha, "targets": list(lora.targets), "dropout": lora.dropout},
        "task": model.task.get_config(),
        "num_segments": model.num_segments,
        "pooling": pooling,
        "head_dropout": dropout,
        "seq_length": model.seq_length,
        "weights_file_sha256": hashlib.sha256(payload).hexdigest(),
    }

    def write(directory):
        os.makedirs(directory)
        with open(os.path.join(directory, WEIGHTS_FILE), "wb") as file:
            file.write(payload)
        write_manifest(directory, info)

    return write_atomically(path, write, kind="adapter")


def read_adapter(path):
    """(info dict, {name: array}) of an adapter directory, checked for completeness; a ValueError if damaged."""
    path = user_path(path)
    info_file, weights_file = os.path.join(path, MARKER_FILE), os.path.join(path, WEIGHTS_FILE)
    if not os.path.isdir(path) or not os.path.isfile(info_file):
        raise ValueError(f"{path!r} is not an adapter directory: expected {MARKER_FILE} and {WEIGHTS_FILE} "
                         "(written by tunekit.peft.save_adapter).")
    info = read_manifest(path, "adapter")
    try:
        lora, base = info["lora"], info["base"]
        for section, keys in ((info, REQUIRED_KEYS), (lora, LORA_KEYS), (base, BASE_KEYS)):
            missing = [key for key in keys if key not in section]
            if missing:
                raise KeyError(f"missing {missing}")
        if not isinstance(lora["targets"], list) or not isinstance(base["weights_sha256"], str):
            raise TypeError("lora.targets must be a list and base.weights_sha256 a str")
    except (KeyError, TypeError) as error:
        raise ValueError(f"{info_file!r} is damaged or not a tunekit adapter description ({error!r}).") from error
    try:
        with open(weights_file, "rb") as file:
            payload = file.read()
    except OSError as error:
        raise ValueError(f"Adapter {path!r} is incomplete: cannot read {WEIGHTS_FILE} ({error}).") from error
    if hashlib.sha256(payload).hexdigest() != info.get("weights_file_sha256"):
        raise ValueError(f"Adapter {path!r} is damaged: {WEIGHTS_FILE} does not match the hash recorded in "
                         f"{MARKER_FILE} (truncated or modified file). Save the adapter again.")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"Adapter {path!r} is damaged: {WEIGHTS_FILE} cannot be read ({error}).") from error
    return info, arrays


def _check_factors(path, info, arrays, encoder):
    """Every factor the description promises, with the shapes the base needs."""
    lora = info["lora"]
    for index in range(encoder.num_layers):
        for target in lora["targets"]:
            for which in ("a", "b"):
                name = _factor_name(index, target, which)
                if name not in arrays or arrays[name].ndim != 2 or lora["rank"] not in arrays[name].shape:
                    raise ValueError(f"Adapter {path!r} is damaged: {name} is missing or misshapen for rank "
                                     f"{lora['rank']}.")


def _check_base(path, info, encoder, name):
    base = info["base"]
    fingerprint = weights_fingerprint(encoder)
    if fingerprint != base["weights_sha256"]:
        raise ValueError(
            f"Adapter {path!r} belongs to another base: it was trained on {base['name']!r} (weights sha256 "
            f"{base['weights_sha256'][:12]}…, {base['num_layers']} layers, width {base['hidden_size']}), but this "
            f"encoder ({name!r}) has weights sha256 {fingerprint[:12]}…. Load the base it was trained on."
        )


def load_adapter(path, target):
    """Loads an adapter onto a base backbone (a new `TextModel`) or into an existing LoRA `TextModel`.

    Args:
        path: a directory written by `save_adapter`.
        target: a `Backbone` with the base encoder the adapter was trained on: returns a new `TextModel` (the
            base encoder is shared, not copied, so several adapters can be loaded on one backbone); or a LoRA
            `TextModel` with the same base, targets, rank, alpha and task: its adapters and head are overwritten
            and it is returned.

    Raises:
        ValueError: a damaged or truncated adapter, another base, or (into a model) other targets/rank/alpha/task.
            Nothing is changed then.
    """
    info, arrays = read_adapter(path)
    lora_info = info["lora"]
    if isinstance(target, TextModel):
        lora = lora_encoder_of(target)
        _check_base(path, info, lora.encoder, lora.base_name)
        mine = {"targets": list(lora.targets), "rank": lora.rank, "alpha": lora.alpha, "task": target.task.get_config()}
        theirs = {"targets": lora_info["targets"], "rank": lora_info["rank"], "alpha": lora_info["alpha"],
                  "task": info["task"]}
        differences = {key: {"adapter": theirs[key], "model": mine[key]} for key in mine if mine[key] != theirs[key]}
        if differences:
            raise ValueError(f"Adapter {path!r} does not fit this model; they differ in {differences}. Load it onto "
                             "the base backbone instead: load_adapter(path, backbone).")
        _check_factors(path, info, arrays, lora.encoder)
        _assign(path, info, arrays, target)
        return target
    if not isinstance(target, Backbone):
        raise TypeError(f"load_adapter needs a Backbone or a LoRA TextModel, got {type(target).__name__}.")
    if isinstance(target.encoder, LoraEncoder):
        raise TypeError("Load adapters onto the base backbone (from tunekit.load_backbone), not a LoRA one.")
    if not isinstance(target.encoder, BertEncoder):
        raise TypeError(f"Adapter {path!r} is a LoRA adapter, which needs a native BertEncoder base; this backbone "
                        f"has a {type(target.encoder).__name__}.")
    _check_base(path, info, target.encoder, target.name)
    _check_factors(path, info, arrays, target.encoder)
    trainable = target.encoder.trainable
    model = _model_on(enable_lora(target, rank=lora_info["rank"], alpha=lora_info["alpha"],
                                  targets=lora_info["targets"], dropout=lora_info["dropout"]), info)
    try:
        _assign(path, info, arrays, model)
    except ValueError:
        target.encoder.trainable = trainable  # enable_lora froze it; leave the backbone as it was
        raise
    return model


def _assign(path, info, arrays, model):
    """Checks every shape, then assigns the adapter's factors and head weights to `model`."""
    lora = model.encoder
    pairs = []
    for (index, target), (a, b) in lora.factors.items():
        pairs += [(a, arrays[_factor_name(index, target, "a")]), (b, arrays[_factor_name(index, target, "b")])]
    heads = head_weights(model.core, lora)
    if len([name for name in arrays if name.startswith("head/")]) != len(heads):
        raise ValueError(f"Adapter {path!r} is damaged: it has no head of the task {info['task']}.")
    pairs += [(weight, arrays[f"head/{position}"]) for position, weight in enumerate(heads)]
    for weight, value in pairs:
        if tuple(value.shape) != tuple(weight.shape):
            raise ValueError(f"Adapter {path!r} is damaged: {weight.path} has shape {tuple(weight.shape)} but the "
                             f"file holds {tuple(value.shape)}.")
    for weight, value in pairs:
        weight.assign(value)


def _model_on(backbone, info):
    task = task_from_config(info["task"])
    core = build_core(backbone.encoder, task, pooling=info["pooling"] or backbone.pooling,
                      dropout=info["head_dropout"])
    return TextModel(backbone.preprocessor, core, task, num_segments=info["num_segments"],
                     name=f"{task.name}_model")
