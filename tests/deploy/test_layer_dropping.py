"""`drop_layers`: the bottom k blocks of a native encoder, with their pretrained weights, as a smaller backbone."""

import numpy as np
import pytest


def test_dropped_encoder_keeps_the_bottom_blocks_and_trains(fixture_texts):
    import keras
    import tensorflow as tf
    from deploy_models import tiny_backbone

    import tunekit as tk
    from tunekit.backbones.layer_dropping import drop_layers

    backbone = tiny_backbone(num_layers=3)
    small = drop_layers(backbone, keep=1)
    assert small.encoder.num_layers == 1 and small.name == "tiny[:1]"
    assert small.encoder.count_params() < backbone.encoder.count_params()
    assert backbone.encoder.num_layers == 3  # the original is untouched
    ids = backbone.preprocessor(tf.constant(fixture_texts[0][:4]))
    np.testing.assert_allclose(small.encoder(ids)["sequence_output"], backbone.encoder(ids)["encoder_outputs"][0],
                               atol=1e-6)

    model = tk.attach_head(small, "classification", num_classes=2, seed=0)
    model.core.compile(optimizer=keras.optimizers.Adam(3e-3), loss=model.task.loss())
    history = model.core.fit(ids, np.array([0, 1, 0, 1]), epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model(tf.constant(["a good film"])).shape == (1, 2)


def test_bad_arguments_are_refused(backbone):
    from deploy_models import tiny_backbone

    from tunekit.backbones.layer_dropping import drop_layers

    with pytest.raises(TypeError, match="TF Hub SavedModel"):
        drop_layers(backbone, keep=1)  # the conftest backbone: a TF Hub-format encoder
    for keep in (0, 3, True, 1.0):
        with pytest.raises(ValueError, match="keep must be"):
            drop_layers(tiny_backbone(), keep=keep)
    with pytest.raises(TypeError, match="Backbone"):
        drop_layers("minilm-l6", keep=2)
