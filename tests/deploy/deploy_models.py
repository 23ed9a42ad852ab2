"""Tiny native models for the deployment tests (a module of its own: `conftest` names collide across folders)."""

from sample_texts import VOCAB


def tiny_backbone(seq_length=16, num_layers=2, dtype=None):
    import keras

    from tunekit.backbones.backbone import Backbone
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    keras.utils.set_random_seed(0)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=num_layers, num_heads=4,
                          intermediate_size=64, max_sequence_length=64, dtype=dtype)
    preprocessor = WordPiecePreprocessor(VOCAB, lower_case=True, seq_length=seq_length, truncation="head_tail")
    return Backbone(encoder=encoder, preprocessor=preprocessor, name="tiny", pooling="mean")


def trained(task, x, y, dtype=None, **options):
    """A tiny model of `task` (its encoder computing in `dtype`) fitted to (x, y) with plain Keras on its token ids
    (a few seconds)."""
    import keras
    import tensorflow as tf

    import tunekit as tk

    model = tk.attach_head(tiny_backbone(dtype=dtype), task, seed=0, **options)
    segments = [tf.constant(segment) for segment in (x if model.num_segments == 2 else [x])]
    ids = model.preprocessor(segments if len(segments) == 2 else segments[0])
    model.core.compile(optimizer=keras.optimizers.Adam(3e-3), loss=model.task.loss())
    model.core.fit(ids, model.task.encode_labels(y), epochs=8, batch_size=16, verbose=0)
    return model
