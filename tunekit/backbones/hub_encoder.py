"""A Keras 3 layer over a TF Hub BERT encoder SavedModel whose variables Keras really trains.

`hub.KerasLayer` is a Keras 2 layer: inside a Keras 3 model its variables are invisible to the
optimizer and the encoder silently stays frozen. `HubEncoder` loads the SavedModel itself and adopts
each of its `tf.Variable`s as a `keras.Variable` (Keras' TF backend keeps the very same variable object),
so `model.trainable_weights` holds the encoder's weights, the optimizer updates them, and `.keras`
files save and restore them.

Example:

>>> # a local folder (here a tiny test export) or a URL, e.g.
>>> # "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2"
>>> encoder = HubEncoder(encoder_dir)
>>> len(encoder.trainable_weights) > 0
True
"""

import re

import keras
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401 - some encoder exports reference text ops

from tunekit.hub_handles import resolve_handle
from tunekit.preprocessing.packing import MODEL_INPUT_KEYS

ENCODER_OUTPUT_KEYS = ("pooled_output", "sequence_output")


def load_saved_model(path):
    """The TF Hub SavedModel in local folder `path`, loaded (`hub.load`)."""
    return hub.load(path)


def keras_variable_name(tf_name):
    """A tf.Variable name such as `transformer/layer_0/bias:0` as a Keras variable name."""
    return re.sub(r"[^A-Za-z0-9_.-]", ".", re.sub(r":\d+$", "", tf_name))


def adopt_variable(tf_variable, trainable):
    """Wraps an existing `tf.Variable` in a `keras.Variable` that shares (not copies) its storage."""
    variable = keras.Variable(
        initializer=tf_variable,
        dtype=tf_variable.dtype.name,
        trainable=trainable,
        name=keras_variable_name(tf_variable.name),
    )
    if variable.value is not tf_variable:
        raise RuntimeError(
            "This Keras version copies tf.Variables instead of adopting them, so a TF Hub encoder could not be "
            "fine-tuned. Please report this with your keras and tensorflow versions."
        )
    return variable


# Why a SavedModel encoder cannot train on several replicas (MultiWorkerMirroredStrategy, MirroredStrategy).
SEVERAL_REPLICAS = ("Training on several replicas", "a SavedModel's functions were traced for one device and fail "
                    "inside a distribution strategy's replicas. Train it in one process")


def refuse_saved_model_encoder(encoder, feature, why):
    """Raises a ValueError, before any work, when `feature` meets a `HubEncoder`, which cannot provide it (`why`)."""
    if isinstance(encoder, HubEncoder):
        raise ValueError(_not_native_message(encoder.handle, feature, why))


def _not_native_message(handle, feature, why):
    return (f"{feature} needs tunekit's native encoder, but this model's encoder is a HubEncoder over the TF Hub "
            f"SavedModel {handle!r}: {why}. TF Hub BERT encoders exported by TF Model Garden (the published ones) "
            "load as native encoders (load_backbone without native=False); encoders of other structures stay on the "
            "SavedModel path (docs/backbones.md lists what that path supports).")


@keras.saving.register_keras_serializable(package="tunekit")
class HubEncoder(keras.layers.Layer):
    """A TF Hub BERT-family encoder (dict of int32 inputs -> `pooled_output`, `sequence_output`, ...).

    Args:
        handle: a tfhub.dev/Kaggle URL or a local directory of a TF Hub encoder SavedModel.
        trainable: whether fine-tuning updates the encoder's weights.
        module: the SavedModel already loaded from `handle` (`load_saved_model`), to save loading it twice.
        frozen_variables: the indices (in the SavedModel's `variables`) of the variables frozen one by one
            (`tunekit.peft.freeze_layers`); the config records them, so a reloaded model trains what it trained.
    """

    def __init__(self, handle, trainable=True, module=None, frozen_variables=(), **kwargs):
        super().__init__(**kwargs)
        self.handle = handle
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError(_not_native_message(handle, *SEVERAL_REPLICAS))
        path = resolve_handle(handle, what="encoder")
        # The local SavedModel directory: `tunekit.save_model` copies it into the saved folder.
        self.source_path = path
        module = load_saved_model(path) if module is None else module
        if not callable(module) or not hasattr(module, "variables") or not hasattr(module, "trainable_variables"):
            raise ValueError(
                f"{handle!r} is not a TF Hub encoder: a TF Hub text encoder is callable and exposes .variables "
                "and .trainable_variables (a TF2 SavedModel saved from Keras or with those attributes)."
            )
        # Keep a reference: without it the loaded functions' variables can be garbage-collected.
        self._module = module
        trainable_ids = {id(variable) for variable in module.trainable_variables}
        self._adopted_variables = [
            adopt_variable(variable, trainable=id(variable) in trainable_ids) for variable in module.variables
        ]
        probe = {"input_word_ids": tf.constant([[1, 2]]), "input_mask": tf.ones([1, 2], tf.int32),
                 "input_type_ids": tf.zeros([1, 2], tf.int32)}
        outputs = module(probe, training=False)
        missing = [key for key in ENCODER_OUTPUT_KEYS if not isinstance(outputs, dict) or key not in outputs]
        if missing:
            found = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(
                f"{handle!r} does not look like a BERT encoder: its outputs lack {missing} (found {found}). "
                "tunekit needs an encoder with the TF Hub text-encoder interface (pooled_output, sequence_output); "
                "did you pass the preprocessor as encoder?"
            )
        self.hidden_size = int(outputs["sequence_output"].shape[-1])
        self.num_layers = len(outputs.get("encoder_outputs", [outputs["sequence_output"]]))
        # Set once the variables exist: the setter freezes them too (and skips a value the layer already has).
        self.trainable = trainable
        for index in frozen_variables:
            self._adopted_variables[index].trainable = False
        self.built = True

    def call(self, inputs, training=None):
        inputs = {key: tf.cast(inputs[key], tf.int32) for key in MODEL_INPUT_KEYS}
        outputs = self._module(inputs, training=bool(training) and self.trainable)
        return {
            "pooled_output": outputs["pooled_output"],
            "sequence_output": outputs["sequence_output"],
            "encoder_outputs": list(outputs.get("encoder_outputs", [outputs["sequence_output"]])),
        }

    def compute_output_spec(self, inputs):
        batch, length = inputs["input_word_ids"].shape[:2]
        sequence = (batch, length, self.hidden_size)
        return {
            "pooled_output": keras.KerasTensor((batch, self.hidden_size), dtype="float32"),
            "sequence_output": keras.KerasTensor(sequence, dtype="float32"),
            "encoder_outputs": [keras.KerasTensor(sequence, dtype="float32") for _ in range(self.num_layers)],
        }

    def get_config(self):
        config = super().get_config()
        config["handle"] = self.handle
        config["frozen_variables"] = [index for index, variable in enumerate(self._adopted_variables)
                                      if self.trainable and not variable.trainable]
        return config
