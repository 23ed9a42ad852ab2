"""A native Keras 3 BERT encoder with the inputs and outputs of a TF Hub BERT encoder.

The architecture is the one of Hugging Face ``BertModel`` (and of the original Google BERT): word, position and
token-type embeddings, LayerNorm, then post-LayerNorm transformer blocks with GELU (exact, as Hugging Face
checkpoints compute it, or its tanh approximation, as Google's published TF Hub BERTs do), then a tanh pooler on
the first token. Written with ``keras.ops`` and Keras layers only, so it follows Keras dtype policies (mixed
precision) and compiles with XLA.

Example:

>>> import numpy as np
>>> encoder = BertEncoder(vocabulary_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
>>> outputs = encoder({
...     "input_word_ids": np.array([[2, 7, 9, 3, 0]], "int32"),   # [CLS] a b [SEP] PAD
...     "input_mask": np.array([[1, 1, 1, 1, 0]], "int32"),
...     "input_type_ids": np.zeros((1, 5), "int32"),
... })
>>> tuple(outputs["sequence_output"].shape), tuple(outputs["pooled_output"].shape), len(outputs["encoder_outputs"])
((1, 5, 32), (1, 32), 2)
"""

import math

import keras
from keras import ops

# Added to the attention scores of padded positions. The softmax runs in float32, so this is safe under any
# dtype policy (it would overflow float16, which is why the scores are cast up first).
_MASKED_SCORE = -1e9

# `hidden_activation` values: exact (erf) GELU, and the tanh approximation of Google's BERT and TF Model Garden.
ACTIVATIONS = ("gelu", "gelu_approximate")

# The dense projections of a block, by sublayer name: what LoRA adapters can target (see `tunekit.peft`).
PROJECTIONS = ("query", "key", "value", "attention_output", "intermediate", "output_dense")


def _weight_initializer():
    return keras.initializers.TruncatedNormal(stddev=0.02)


class BertTransformerBlock(keras.layers.Layer):
    """One post-LayerNorm BERT block: self-attention then feed-forward, each with dropout, residual and LayerNorm.

    Sublayer names follow Hugging Face's ``encoder.layer.{i}`` parts: ``query``, ``key``, ``value``,
    ``attention_output`` + ``attention_layer_norm`` (``attention.output.*``), ``intermediate``
    (``intermediate.dense``), ``output_dense`` + ``output_layer_norm`` (``output.*``).
    Built and called by `BertEncoder`; not serialised on its own.
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, dropout, attention_dropout, layer_norm_epsilon,
                 hidden_activation="gelu", **kwargs):
        super().__init__(**kwargs)
        self.approximate_gelu = hidden_activation == "gelu_approximate"
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        sublayer_args = {"dtype": self.dtype_policy}

        def dense(units, name):
            return keras.layers.Dense(units, kernel_initializer=_weight_initializer(), name=name, **sublayer_args)

        def layer_norm(name):
            return keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name=name, **sublayer_args)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_probs_dropout = keras.layers.Dropout(attention_dropout, name="attention_probs_dropout",
                                                            **sublayer_args)
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_output_dropout = keras.layers.Dropout(dropout, name="attention_output_dropout",
                                                             **sublayer_args)
        self.attention_layer_norm = layer_norm("attention_layer_norm")
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output_dense")
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout", **sublayer_args)
        self.output_layer_norm = layer_norm("output_layer_norm")

    def build(self, input_shape=None):
        hidden_shape = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden_shape)
        self.output_dense.build((None, None, self.intermediate.units))
        self.attention_layer_norm.build(hidden_shape)
        self.output_layer_norm.build(hidden_shape)
        self.built = True

    def _split_heads(self, x):
        """[B, T, H] -> [B, heads, T, head_size]."""
        x = ops.reshape(x, (ops.shape(x)[0], -1, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))

    def _project(self, layer, hidden, lora, training):
        """`layer(hidden)`, plus the low-rank update `lora(layer.name, hidden, training)` when adapters are given."""
        projected = layer(hidden)
        if lora is None:
            return projected
        update = lora(layer.name, hidden, training)
        return projected if update is None else projected + update

    def call(self, hidden, input_mask, training=None, lora=None):
        """`hidden` [B, T, H]; `input_mask` int [B, T], 1 for tokens and 0 for padding; `lora`: None, or a function
        `(projection name, its input, training) -> update to add to its output, or None` (see `tunekit.peft`)."""
        # Built here rather than passed in: Keras would cast a float argument to the (maybe 16-bit) compute dtype.
        is_padding = 1.0 - ops.cast(input_mask, "float32")
        # expand_dims rather than `[:, None, None, :]`: LiteRT has no kernel for that slice on a dynamic length.
        attention_score_addend = ops.expand_dims(ops.expand_dims(is_padding, 1), 1) * _MASKED_SCORE
        query = self._split_heads(self._project(self.query, hidden, lora, training))
        key = self._split_heads(self._project(self.key, hidden, lora, training))
        value = self._split_heads(self._project(self.value, hidden, lora, training))
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        scores = ops.cast(scores, "float32") / math.sqrt(self.head_size) + attention_score_addend
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_probs_dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, value), (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(hidden)[0], -1, self.hidden_size))

        attended = self.attention_output_dropout(self._project(self.attention_output, context, lora, training),
                                                 training=training)
        hidden = self.attention_layer_norm(hidden + attended)

        intermediate = keras.activations.gelu(self._project(self.intermediate, hidden, lora, training),
                                              approximate=self.approximate_gelu)
        transformed = self.output_dropout(self._project(self.output_dense, intermediate, lora, training),
                                          training=training)
        return self.output_layer_norm(hidden + transformed)


@keras.saving.register_keras_serializable(package="tunekit")
class BertEncoder(keras.layers.Layer):
    """BERT encoder taking and returning the dicts of a TF Hub BERT encoder.

    Args:
        vocabulary_size: number of word-piece ids.
        hidden_size: width H of every token vector; must be a multiple of `num_heads`.
        num_layers: number of transformer blocks.
        num_heads: attention heads per block.
        intermediate_size: width of the feed-forward layer of each block.
        max_sequence_length: size of the position table; inputs may have any length T up to it.
        type_vocabulary_size: number of segment (token type) ids.
        dropout: dropout rate on embeddings and block outputs (applied only when called with `training=True`).
        attention_dropout: dropout rate on attention probabilities.
        layer_norm_epsilon: epsilon of every LayerNorm.
        hidden_activation: `"gelu"` (exact, erf-based: Hugging Face checkpoints) or `"gelu_approximate"` (the tanh
            approximation: Google's BERT checkpoints and the TF Hub encoders exported by TF Model Garden).
        num_frozen_layers: None (everything trains), or N in 0..num_layers: the embeddings and the bottom N blocks
            are frozen and no gradient flows below block N (see `freeze_bottom`).

    Call with a dict of int `[B, T]` tensors `input_word_ids`, `input_mask` (1 for tokens, 0 for padding) and
    `input_type_ids` (and optionally `lora`, see `call`). Returns a dict: `pooled_output` `[B, H]` (tanh dense
    layer on the first token), `sequence_output` `[B, T, H]`, and `encoder_outputs`, the list of the `num_layers`
    block outputs `[B, T, H]` (the last one is `sequence_output`). Outputs have the layer's compute dtype.

    Sublayers are attributes with stable names (`word_embeddings`, `position_embeddings`, `token_type_embeddings`,
    `embeddings_layer_norm`, `transformer_blocks[i]`, `pooler`), so weights can be assigned by name after `build()`.

    Example, in a Functional model:

    >>> from tunekit.preprocessing.packing import MODEL_INPUT_KEYS
    >>> encoder = BertEncoder(vocabulary_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    >>> inputs = {key: keras.Input((None,), dtype="int32", name=key) for key in MODEL_INPUT_KEYS}
    >>> model = keras.Model(inputs, encoder(inputs)["pooled_output"])
    >>> model.output_shape
    (None, 32)
    """

    def __init__(self, vocabulary_size, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_sequence_length=512, type_vocabulary_size=2, dropout=0.1, attention_dropout=0.1,
                 layer_norm_epsilon=1e-12, num_frozen_layers=None, hidden_activation="gelu", **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads}).")
        if hidden_activation not in ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {ACTIVATIONS}, got {hidden_activation!r}.")
        self.hidden_activation = hidden_activation
        self.vocabulary_size = vocabulary_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.max_sequence_length = max_sequence_length
        self.type_vocabulary_size = type_vocabulary_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon

        sublayer_args = {"dtype": self.dtype_policy}

        def embedding(rows, name):
            return keras.layers.Embedding(rows, hidden_size, embeddings_initializer=_weight_initializer(),
                                          name=name, **sublayer_args)

        self.word_embeddings = embedding(vocabulary_size, "word_embeddings")
        self.position_embeddings = embedding(max_sequence_length, "position_embeddings")
        self.token_type_embeddings = embedding(type_vocabulary_size, "token_type_embeddings")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm", **sublayer_args)
        self.embeddings_dropout = keras.layers.Dropout(dropout, name="embeddings_dropout", **sublayer_args)
        self.transformer_blocks = [
            BertTransformerBlock(hidden_size, num_heads, intermediate_size, dropout, attention_dropout,
                                 layer_norm_epsilon, hidden_activation, name=f"transformer_block_{index}",
                                 **sublayer_args)
            for index in range(num_layers)
        ]
        self.pooler = keras.layers.Dense(hidden_size, activation="tanh", kernel_initializer=_weight_initializer(),
                                         name="pooler", **sublayer_args)
        self.num_frozen_layers = None
        if num_frozen_layers is not None:
            self.freeze_bottom(num_frozen_layers)

    def freeze_bottom(self, num_layers):
        """Freezes the embeddings and the bottom `num_layers` blocks (0..num_layers); the blocks above and the pooler
        keep their trainable state.

        The call then stops gradients at the input of the lowest trainable block, so a training step runs no
        backward pass below it: that is what makes it faster, not just the smaller optimizer update. Setting
        `encoder.trainable` afterwards overrides the per-layer flags (Keras propagates it to every sublayer).

        >>> encoder = BertEncoder(vocabulary_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
        >>> encoder.freeze_bottom(1)
        >>> [block.trainable for block in encoder.transformer_blocks]
        [False, True]
        """
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 0 <= num_layers <= self.num_layers:
            raise ValueError(
                f"Cannot freeze {num_layers!r} layers: this encoder has {self.num_layers} transformer layers, so "
                f"num_layers must be an int from 0 (embeddings only) to {self.num_layers} (every layer)."
            )
        for layer in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings,
                      self.embeddings_layer_norm, *self.transformer_blocks[:num_layers]):
            layer.trainable = False
        self.num_frozen_layers = num_layers

    def build(self, input_shape=None):
        """Creates all weights; their shapes depend only on the configuration, so `input_shape` is ignored."""
        for embedding in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            embedding.build()
        hidden_shape = (None, None, self.hidden_size)
        self.embeddings_layer_norm.build(hidden_shape)
        for block in self.transformer_blocks:
            block.build(hidden_shape)
        self.pooler.build((None, self.hidden_size))
        self.built = True

    def call(self, inputs, training=None, lora=None):
        """`lora`: None, or a function `(block index, projection name, its input, training) -> update added to the
        projection's output, or None`; `tunekit.peft.LoraEncoder` passes its adapters this way, so several adapter
        sets can share one encoder."""
        word_ids = inputs["input_word_ids"]
        length = word_ids.shape[1]
        if length is not None and length > self.max_sequence_length:
            raise ValueError(f"Sequence length {length} exceeds max_sequence_length {self.max_sequence_length}.")
        positions = ops.arange(ops.shape(word_ids)[1], dtype="int32")
        embeddings = (self.word_embeddings(word_ids)
                      + ops.expand_dims(self.position_embeddings(positions), 0)
                      + self.token_type_embeddings(inputs["input_type_ids"]))
        hidden = self.embeddings_dropout(self.embeddings_layer_norm(embeddings), training=training)

        encoder_outputs = []
        for index, block in enumerate(self.transformer_blocks):
            if index == self.num_frozen_layers:
                hidden = ops.stop_gradient(hidden)  # no backward pass through the frozen layers below
            block_lora = None if lora is None else _block_lora(lora, index)
            hidden = block(hidden, inputs["input_mask"], training=training, lora=block_lora)
            encoder_outputs.append(hidden)
        if self.num_frozen_layers == self.num_layers:
            hidden = ops.stop_gradient(hidden)
        return {
            "pooled_output": self.pooler(hidden[:, 0, :]),
            "sequence_output": hidden,
            "encoder_outputs": encoder_outputs,
        }

    def compute_output_spec(self, inputs, training=None, lora=None):
        batch_size, length = inputs["input_word_ids"].shape

        def token_vectors():
            return keras.KerasTensor((batch_size, length, self.hidden_size), dtype=self.compute_dtype)

        return {
            "pooled_output": keras.KerasTensor((batch_size, self.hidden_size), dtype=self.compute_dtype),
            "sequence_output": token_vectors(),
            "encoder_outputs": [token_vectors() for _ in range(self.num_layers)],
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_sequence_length=self.max_sequence_length,
            type_vocabulary_size=self.type_vocabulary_size,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            num_frozen_layers=self.num_frozen_layers,
            hidden_activation=self.hidden_activation,
        )
        return config


def _block_lora(lora, index):
    """`lora` of `BertEncoder.call` bound to one block."""

    def block_lora(name, hidden, training):
        return lora(index, name, hidden, training)

    return block_lora
