"""The private TensorFlow / Keras names tunekit still relies on, each because no public API does the job (the
comment at each use says why). When an upgrade moves or changes one, these tests fail first, naming the name and
the tunekit code that needs a new way, instead of an export or a resumed run breaking somewhere deep.

- `tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2`
  (tunekit.deploy.litert_graph.convert);
- `tensorflow.lite.python.schema_py_generated` (tunekit.deploy.litert_graph.custom_op_names);
- `tensorflow.lite.python.interpreter.InterpreterWithCustomOps` (tunekit.deploy.litert_runtime, without ai-edge-litert);
- Keras' `seed_generator_state` variables and `Layer._flatten_layers` (tunekit.training.trainer: run fingerprints,
  reseeding dropout).
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf


def _private(module, name, used_by):
    """`module.name`, or a test failure naming what moved and which tunekit code uses it."""
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"TensorFlow {tf.__version__} no longer has {module}.{name} ({error}); {used_by} needs another "
                    "way.")


def test_tensorflow_can_still_freeze_a_functions_variables():
    freeze = _private("tensorflow.python.framework.convert_to_constants", "convert_variables_to_constants_v2",
                      "tunekit.deploy.litert_graph.convert (LiteRT export)")
    weight = tf.Variable([2.0, 3.0])
    function = tf.function(lambda x: x * weight, input_signature=[tf.TensorSpec([2], tf.float32)])
    frozen = freeze(function.get_concrete_function())
    ops = {node.op for node in frozen.graph.as_graph_def().node}
    assert not ops & {"ReadVariableOp", "VarHandleOp"}, (
        f"convert_variables_to_constants_v2 left variable ops {sorted(ops)}: the LiteRT export would read NaN weights")
    weight.assign([5.0, 5.0])  # the frozen function keeps the values it was frozen with
    assert frozen(tf.constant([1.0, 1.0]))[0].numpy().tolist() == [2.0, 3.0]


def test_tensorflow_can_still_read_the_custom_ops_of_a_tflite_model():
    schema = _private("tensorflow.lite.python", "schema_py_generated",
                      "tunekit.deploy.litert_graph.custom_op_names (the export's check of unsupported ops)")
    assert all(hasattr(schema.Model, name) for name in ("GetRootAsModel", "OperatorCodes", "OperatorCodesLength")), (
        "tensorflow.lite.python.schema_py_generated.Model lost its flatbuffer readers")
    from tunekit.deploy.litert_graph import custom_op_names

    def converted(function, signature):
        concrete = tf.function(function, input_signature=signature).get_concrete_function()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], tf.Module())
        converter.allow_custom_ops = True
        return converter.convert()

    counts = converted(lambda x: {"counts": tf.math.bincount(x, minlength=4)}, [tf.TensorSpec([None], tf.int32)])
    doubled = converted(lambda x: {"y": x * 2.0}, [tf.TensorSpec([None], tf.float32)])
    assert custom_op_names(counts) == {"DenseBincount"}, "the schema reader no longer finds a custom op's name"
    assert custom_op_names(doubled) == set()


def test_tensorflow_still_has_an_interpreter_that_takes_custom_op_registerers():
    interpreter = _private("tensorflow.lite.python.interpreter", "InterpreterWithCustomOps",
                           "tunekit.deploy.litert_runtime.open_interpreter (artifacts without ai-edge-litert)")
    assert "custom_op_registerers" in inspect.signature(interpreter.__init__).parameters, (
        "InterpreterWithCustomOps no longer takes custom_op_registerers: the tensorflow-text kernels cannot be loaded")


def _model_with_nested_dropout():
    inner = keras.Sequential([keras.layers.Dense(4), keras.layers.Dropout(0.25, seed=1)], name="inner")
    inputs = keras.Input([3])
    outputs = keras.layers.Dropout(0.5, seed=2)(inner(inputs))
    return keras.Model(inputs, outputs)


def test_keras_random_layers_keep_their_state_in_seed_generator_state_variables():
    model = _model_with_nested_dropout()
    states = [variable for variable in model.variables if variable.name == "seed_generator_state"]
    assert len(states) == 2, (
        f"Keras {keras.__version__} no longer names a Dropout's random state 'seed_generator_state' (variables: "
        f"{[v.name for v in model.variables]}): tunekit.training.trainer's weights fingerprint and reseed_dropout "
        "find the states by that name.")
    before = model(np.ones([64, 3]), training=True).numpy()
    for i, state in enumerate(states):
        state.assign(np.array([7, i], dtype=state.dtype))
    first = model(np.ones([64, 3]), training=True).numpy()
    for i, state in enumerate(states):
        state.assign(np.array([7, i], dtype=state.dtype))
    assert np.array_equal(first, model(np.ones([64, 3]), training=True).numpy()), (
        "assigning seed_generator_state no longer replays the dropout masks: reseed_dropout would not reseed")
    assert not np.array_equal(before, first)


def test_keras_layers_still_flatten_their_nested_layers():
    model = _model_with_nested_dropout()
    flatten = getattr(model, "_flatten_layers", None)
    assert flatten is not None, (
        f"Keras {keras.__version__} removed Layer._flatten_layers: tunekit.training.trainer.dropout_rates lists "
        "the dropout layers of the whole model (nested ones included) with it.")
    rates = [layer.rate for layer in flatten() if isinstance(layer, keras.layers.Dropout)]
    assert sorted(rates) == [0.25, 0.5], f"_flatten_layers no longer reaches nested layers: found rates {rates}"
