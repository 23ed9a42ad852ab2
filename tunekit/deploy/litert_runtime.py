"""Running a LiteRT artifact: the interpreter (with the tensorflow-text kernels) behind `tunekit.deploy.load_artifact`.

Loading an artifact needs only this module (numpy, tensorflow-text's kernel registrar and the LiteRT runtime),
not the exporter (`tunekit.deploy.tflite`) nor the graph builder (`tunekit.deploy.litert_graph`). The runtime is
`ai-edge-litert` (`pip install "tunekit[deploy]"`) or, without that package, TensorFlow's deprecated `tf.lite`
interpreter.

Example:

>>> import os
>>> model_file = os.path.join(artifact_dir, "model.tflite")     # artifact_dir: written by export_tflite
>>> runtime, runner = open_interpreter(model_file, num_segments=1,
...                                    task={"name": "classification", "num_classes": 2})
>>> runner(text=np.array(["A masterpiece."], dtype=object))["probabilities"].shape
(1, 2)
"""

import os
import re
import warnings

import numpy as np

from tunekit.formats import TEXT_INPUT_NAMES


def open_interpreter(model_file, *, num_segments, task):
    """Loads a `.tflite` file into the LiteRT runtime -> (runtime name, signature runner).

    Raises a `ValueError` when the file is not a TFLite model, or its signature does not fit `num_segments`
    and `task` (a manifest written for another model).
    """
    import tensorflow_text as text

    try:
        from ai_edge_litert.interpreter import InterpreterWithCustomOps

        runtime = "ai-edge-litert"
    except ImportError:
        # Private (pinned by tests/test_private_apis.py): the public tf.lite.Interpreter takes no custom op
        # registerers, and TensorFlow exports its subclass that does from this module only (tensorflow-text's guide
        # to its LiteRT kernels imports it from here too).
        from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

        runtime = "tensorflow.lite"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = InterpreterWithCustomOps(
                model_path=model_file, custom_op_registerers=text.tflite_registrar.SELECT_TFTEXT_OPS,
                num_threads=threads)
            runner = interpreter.get_signature_runner("serving_default")
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"{model_file!r} is not a readable TFLite model ({error}); it may be truncated or corrupted. Export it "
            "again with tunekit.deploy.export_tflite."
        ) from None
    inputs = sorted(runner.get_input_details())
    expected = sorted(TEXT_INPUT_NAMES[:num_segments])
    outputs = set(runner.get_output_details())
    wanted = _expected_outputs(task)
    if inputs != expected or not wanted <= outputs:
        raise ValueError(
            f"{model_file!r} takes {inputs} and gives {sorted(outputs)}, but its manifest describes a "
            f"{task.get('name')} model taking {expected}: the manifest belongs to another model. Export it again."
        )
    return runtime, _Runner(runner, model_file)


class _Runner:
    """Calls a signature runner on numpy string arrays and returns the outputs in the order of the texts.

    Long texts go one per invocation, short ones a few together: measured on MiniLM with int8 weights on 2 CPU
    cores, IMDB reviews at seq_length 256 ran at 104 texts/s one at a time and 84 in groups of 8, while SST-2
    sentences (about 25 tokens) ran at 438 texts/s alone and 591 in groups of 8. So texts are sorted by length
    and grouped while a group holds at most `GROUP_CHARACTERS` characters per text times its size (about 256
    tokens of padded batch) and at most `GROUP_TEXTS` texts. Missing kernels become clear `ValueError`s.
    """

    GROUP_CHARACTERS = 1024
    GROUP_TEXTS = 8

    def __init__(self, runner, model_file):
        self._runner = runner
        self._model_file = model_file

    def groups(self, feeds):
        """Index arrays, one per invocation: texts of similar length together, short ones several at a time."""
        lengths = sum(np.char.str_len(values.astype(str)) for values in feeds.values())
        order = np.argsort(lengths, kind="stable")
        groups, start = [], 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.GROUP_TEXTS
                   and lengths[order[end]] * (end + 1 - start) <= self.GROUP_CHARACTERS):
                end += 1
            groups.append(order[start:end])
            start = end
        return groups

    def __call__(self, **feeds):
        groups = self.groups(feeds)
        parts = [self._invoke({name: values[group] for name, values in feeds.items()}) for group in groups]
        restore = np.argsort(np.concatenate(groups), kind="stable")
        return {name: np.concatenate([part[name] for part in parts])[restore] for name in parts[0]}

    def _invoke(self, feeds):
        try:
            return self._runner(**feeds)
        except RuntimeError as error:
            missing = re.findall(r"unresolved custom op: ([\w>]+)", str(error))
            if missing:
                raise ValueError(
                    f"{self._model_file!r} needs the op(s) {missing}, which this LiteRT runtime lacks."
                ) from None
            raise


def _expected_outputs(task):
    """The outputs every artifact of the task (its config dict) has: the task's `output_names`."""
    from tunekit.heads import task_from_config

    return set(task_from_config(task).output_names)
