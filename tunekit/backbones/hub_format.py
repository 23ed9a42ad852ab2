"""Writes a native `BertEncoder` as a SavedModel with the interface of a published TF Hub BERT encoder.

The result loads with ``hub.load(dir)`` or ``tf.saved_model.load(dir)`` and behaves like e.g.
``tensorflow/bert_en_uncased_L-12_H-768_A-12/4``: ``obj(inputs, training=False|True)`` takes a dict of int32
``[B, T]`` tensors ``input_word_ids``, ``input_mask``, ``input_type_ids`` (any B and T) and returns a dict with
``pooled_output``, ``sequence_output``, ``encoder_outputs`` (list) and ``default`` (= ``pooled_output``), all
float32; ``obj.variables``, ``obj.trainable_variables`` and ``obj.regularization_losses`` (empty) are there for
fine-tuning, plus ``obj.vocab_file`` and ``obj.do_lower_case`` when given. The ``serving_default`` signature takes
the three inputs by name and returns ``pooled_output``, ``sequence_output``, ``default`` and
``encoder_outputs_0`` … ``encoder_outputs_{L-1}`` (signatures cannot return lists).

Example:

>>> import tempfile, numpy as np, tensorflow as tf
>>> from tunekit.backbones.bert import BertEncoder
>>> encoder = BertEncoder(vocabulary_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
>>> export_dir = save_hub_encoder(encoder, tempfile.mkdtemp() + "/encoder")
>>> loaded = tf.saved_model.load(export_dir)
>>> inputs = {"input_word_ids": tf.constant([[2, 7, 3]]), "input_mask": tf.constant([[1, 1, 1]]),
...           "input_type_ids": tf.constant([[0, 0, 0]])}
>>> loaded(inputs, training=False)["sequence_output"].shape
TensorShape([1, 3, 32])
"""

import json
import os

import tensorflow as tf

from tunekit.backbones.precision import float32_copy
from tunekit.files import write_atomically
from tunekit.formats import BACKBONE_INFO_FILE, FORMAT_VERSIONS, write_manifest
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS


def save_hub_encoder(encoder, export_dir, *, vocab_file=None, do_lower_case=None):
    """Saves `encoder` (a `BertEncoder`) as a TF Hub-format encoder SavedModel at `export_dir`; returns its path.

    The SavedModel computes in float32 whatever the encoder's dtype policy (its weights are float32 in any case).

    Args:
        encoder: the encoder to export; built first if it is not.
        export_dir: destination folder. It is written atomically: the SavedModel is completed in a temporary
            sibling folder, which then replaces `export_dir` (any previous content is removed only then).
        vocab_file: optional path of the word-piece vocabulary, stored as the asset `obj.vocab_file`.
        do_lower_case: optional bool, stored as the variable `obj.do_lower_case`.
    """
    if vocab_file is not None and not os.path.isfile(vocab_file):
        raise ValueError(f"vocab_file {str(vocab_file)!r} is not a file.")
    if not encoder.built:
        encoder.build()
    if encoder.compute_dtype != "float32":  # e.g. trained in bfloat16: the SavedModel computes in float32
        encoder = float32_copy(encoder)
    module = _hub_encoder_module(encoder, vocab_file, do_lower_case)
    return write_atomically(
        export_dir, lambda path: tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    )


def _hub_encoder_module(encoder, vocab_file, do_lower_case):
    input_spec = {key: tf.TensorSpec([None, None], tf.int32, name=key) for key in MODEL_INPUT_KEYS}

    def encode(inputs, training):
        outputs = encoder(inputs, training=training)
        float_outputs = {
            "pooled_output": tf.cast(outputs["pooled_output"], tf.float32),
            "sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
            "encoder_outputs": [tf.cast(output, tf.float32) for output in outputs["encoder_outputs"]],
        }
        float_outputs["default"] = float_outputs["pooled_output"]
        return float_outputs

    @tf.function
    def call(inputs, training=False):
        return encode(inputs, training)

    # One graph per value of the Python bool `training`, both for any batch size and sequence length.
    call.get_concrete_function(input_spec, training=False)
    call.get_concrete_function(input_spec, training=True)

    @tf.function(input_signature=list(input_spec.values()))
    def serve(input_word_ids, input_mask, input_type_ids):
        outputs = encode(dict(input_word_ids=input_word_ids, input_mask=input_mask, input_type_ids=input_type_ids),
                         training=False)
        signature_outputs = {key: outputs[key] for key in ("pooled_output", "sequence_output", "default")}
        signature_outputs.update({f"encoder_outputs_{index}": output
                                  for index, output in enumerate(outputs["encoder_outputs"])})
        return signature_outputs

    # A plain trackable object: tf.Module would not let `variables` and `trainable_variables` be set as lists.
    module = tf.__internal__.tracking.AutoTrackable()
    module.__call__ = call
    module.serve = serve
    # Keras variables wrap tf.Variables; the SavedModel stores the latter. `variables` includes the dropout layers'
    # seed states (non-trainable), which `call(..., training=True)` updates.
    module.variables = [variable.value for variable in encoder.variables]
    module.trainable_variables = [variable.value for variable in encoder.trainable_variables]
    module.regularization_losses = []
    if vocab_file is not None:
        module.vocab_file = tf.saved_model.Asset(str(vocab_file))
    if do_lower_case is not None:
        module.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False, name="do_lower_case")
    return module



def save_backbone(backbone, directory):
    """Writes a native backbone as TF Hub-format `encoder/` and `preprocessor/` SavedModels in `directory`.

    `tunekit.load_backbone(directory)` reads it back (with the same default pooling), and so can any code that
    consumes TF Hub BERT models. Works for backbones with tunekit's native `BertEncoder` and
    `WordPiecePreprocessor` (Hugging Face checkpoints, `minilm-l6`). The folder appears complete or not at all.

    Example:

    >>> backbone = tk.load_backbone(encoder_dir, seq_length=16)     # e.g. tk.load_backbone("minilm-l6")
    >>> path = save_backbone(backbone, "my_tfhub")
    >>> sorted(os.listdir(path))
    ['backbone.json', 'encoder', 'preprocessor', 'tunekit.json']
    """
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor, save_hub_preprocessor

    encoder, preprocessor = backbone.encoder, backbone.preprocessor
    if not isinstance(encoder, BertEncoder) or not isinstance(preprocessor, WordPiecePreprocessor):
        raise TypeError(
            "save_backbone writes native backbones (BertEncoder + WordPiecePreprocessor, e.g. from a Hugging Face "
            f"checkpoint); got {type(encoder).__name__} + {type(preprocessor).__name__}, which already are TF Hub "
            "models: copy their SavedModel directories instead."
        )

    def write(path):
        os.makedirs(path)
        save_hub_preprocessor(preprocessor.vocabulary, os.path.join(path, "preprocessor"),
                              lower_case=preprocessor.lower_case, default_seq_length=preprocessor.seq_length)
        save_hub_encoder(encoder, os.path.join(path, "encoder"),
                         vocab_file=os.path.join(path, "preprocessor", "assets", "vocab.txt"),
                         do_lower_case=preprocessor.lower_case)
        with open(os.path.join(path, BACKBONE_INFO_FILE), "w", encoding="utf-8") as file:
            json.dump({"pooling": backbone.pooling, "source": backbone.name}, file, indent=2)
        write_manifest(path, {"kind": "backbone", "format_version": FORMAT_VERSIONS["backbone"]})

    return write_atomically(directory, write, kind="backbone")
