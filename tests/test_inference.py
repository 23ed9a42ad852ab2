"""In-process prediction (`tunekit.model.predictor`): the compiled path gives the `tf.data` path's outputs for every
task, is reused across calls, is rebuilt when the model's variables change, and is safe to call from threads;
`TextModel` takes Python lists of strings (its docstring examples run in tests/test_docs.py)."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit.inputs.text_batches import split_segments, text_dataset
from tunekit.inputs.word_batches import sentence_words, token_dataset, word_probabilities
from tunekit.model import DIRECT_LIMIT, predictor

# Lengths from empty to far past seq_length 16 (truncated), unknown words and non-ASCII included.
TEXTS = sentiment_texts(9, seed=5)[0] + [
    "", "good", "Zebra ünïcode film!", " ".join(["the film was very good and great"] * 6), "bad . bad , bad ?"]


@pytest.fixture(scope="module")
def tiny(hub_models):
    return tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)


@pytest.fixture(scope="module")
def classifier(tiny):
    return randomize_head(tk.attach_head(tiny, "classification", labels=["a", "b", "c"], pooling="mean", seed=0))


def randomize_head(model):
    """Spreads the fresh head's outputs (a new head predicts ~uniformly, which would hide differences)."""
    rng = np.random.default_rng(0)
    for layer in model.core.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.kernel.assign(rng.normal(0.0, 0.5, layer.kernel.shape).astype("float32"))
    return model


def tf_data_outputs(model, segments, batch_size):
    """What `Trainer.predict` computed before the compiled path: the tf.data pipeline and `core.predict`."""
    return model.core.predict(text_dataset(model.preprocessor, segments, batch_size=batch_size), verbose=0)


@pytest.mark.parametrize("task, kwargs", [
    ("classification", None),
    ("multilabel", {"labels": ["x", "y"]}),
    ("regression", {"num_outputs": 2}),
    ("classification", {"num_classes": 2, "text_pairs": True}),
])
def test_compiled_path_equals_the_tf_data_path(tiny, classifier, task, kwargs):
    if kwargs is None:
        model = classifier
    else:
        model = randomize_head(tk.attach_head(tiny, task, seed=0, pooling="mean", **kwargs))
    trainer = tk.Trainer(model, batch_size=4)
    if model.num_segments == 2:
        x, keras_form = (TEXTS, TEXTS[::-1]), [TEXTS, TEXTS[::-1]]
    else:
        x = keras_form = TEXTS
    expected = tf_data_outputs(model, split_segments(x, model.num_segments), batch_size=4)
    assert np.ptp(expected, axis=0).max() > 0.05  # outputs differ between texts: equality below means something
    np.testing.assert_allclose(trainer.predict(x), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict(keras_form, batch_size=4), expected, rtol=0, atol=1e-6)
    first = (TEXTS[:1], TEXTS[-1:]) if model.num_segments == 2 else TEXTS[:1]
    np.testing.assert_allclose(trainer.predict(first), expected[:1], rtol=0, atol=1e-6)
    if task == "classification" and model.num_segments == 1:
        assert trainer.predict_labels(TEXTS) == [["a", "b", "c"][i] for i in expected.argmax(axis=1)]


def test_token_classification_compiled_path_equals_the_tf_data_path(tiny):
    model = randomize_head(tk.attach_head(tiny, "token_classification", labels=["O", "B-X", "I-X"], seed=0))
    long = " ".join(["the good films were quite boring"] * 5)  # 30 words, more pieces than one chunk holds
    sentences = sentence_words(TEXTS[:8] + [long, "\x07 good", "a"])
    dataset, _ = token_dataset(model.preprocessor, sentences, batch_size=4)
    expected = word_probabilities(model.core, dataset, sentences)
    actual = tk.Trainer(model, batch_size=4).predict(sentences)
    assert [a.shape for a in actual] == [e.shape for e in expected]
    np.testing.assert_allclose(np.concatenate(actual), np.concatenate(expected), rtol=0, atol=1e-6)


def test_large_inputs_take_the_tf_data_path_with_the_same_outputs(classifier):
    texts = (TEXTS * (DIRECT_LIMIT // len(TEXTS) + 1))[:DIRECT_LIMIT + 1]
    np.testing.assert_allclose(tk.Trainer(classifier).predict(texts), predictor(classifier).texts([texts], 32),
                               rtol=0, atol=1e-6)


def test_compiled_function_is_reused_and_rebuilt_when_variables_change(tiny):
    model = randomize_head(tk.attach_head(tiny, "classification", num_classes=2, seed=0))
    trainer = tk.Trainer(model)
    before = trainer.predict(TEXTS)
    compiled = predictor(model)
    for count in (1, 3, 7):  # other batch sizes and lengths: same function, no rebuild
        trainer.predict(TEXTS[:count])
    assert predictor(model) is compiled
    logits = model.core.get_layer("logits")
    logits.enable_lora(2)
    rng = np.random.default_rng(1)  # both LoRA factors fixed here: enable_lora draws A from Keras' global seed state
    for kernel in (logits.lora_kernel_a, logits.lora_kernel_b):
        kernel.assign(rng.normal(0.0, 1.0, kernel.shape).astype("float32"))
    after = trainer.predict(TEXTS)
    assert predictor(model) is not compiled and np.abs(after - before).max() > 1e-2
    np.testing.assert_allclose(after, model(tf.constant(TEXTS)).numpy(), rtol=0, atol=1e-6)


def test_concurrent_calls_each_get_their_own_answer(tiny, classifier):
    texts_trainer = tk.Trainer(classifier)
    tagger = tk.Trainer(randomize_head(tk.attach_head(tiny, "token_classification", labels=["O", "B", "I"], seed=0)))
    jobs = [(texts_trainer, TEXTS[i:i + 1 + i % 4]) for i in range(6)] + [(tagger, TEXTS[i:i + 2]) for i in range(2)]
    # Expected answers from the tf.data path: the tagger's compiled function is first built by the threads at once.
    scores = tf_data_outputs(classifier, [TEXTS[:9]], batch_size=32)
    sentences = sentence_words(TEXTS[:3])
    tags = word_probabilities(tagger.model.core, token_dataset(tagger.model.preprocessor, sentences, batch_size=32)[0],
                              sentences)
    expected = [scores[i:i + 1 + i % 4] for i in range(6)] + [tags[i:i + 2] for i in range(2)]
    results, start = {}, threading.Barrier(len(jobs))

    def work(i):
        trainer, texts = jobs[i]
        start.wait()
        results[i] = [trainer.predict(texts) for _ in range(5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(len(jobs)))
    for i, answers in results.items():
        for answer in answers:
            np.testing.assert_allclose(np.concatenate(answer), np.concatenate(expected[i]), rtol=0, atol=1e-6)


def test_text_model_takes_python_lists(tiny, classifier):
    expected = classifier(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(classifier(TEXTS).numpy(), expected, rtol=0, atol=0)
    np.testing.assert_allclose(classifier.predict(np.array(TEXTS)), expected, rtol=0, atol=1e-6)
    pairs = tk.attach_head(tiny, "classification", num_classes=2, text_pairs=True, seed=0)
    expected = pairs([tf.constant(TEXTS), tf.constant(TEXTS[::-1])]).numpy()
    np.testing.assert_allclose(pairs({"text": TEXTS, "text_pair": TEXTS[::-1]}).numpy(), expected, rtol=0, atol=0)
    tagger = tk.attach_head(tiny, "token_classification", labels=["O", "B"], seed=0)
    assert tagger.predict(TEXTS[:2], verbose=0).shape == (2, 16, 2)  # per word-piece, as the docstring says
    with pytest.raises(TypeError, match="single string: wrap it in a list"):
        classifier("good film")
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        classifier.predict(["good", None])
    with pytest.raises(ValueError, match="texts_a has 2 texts but texts_b has 1"):
        pairs.predict([["a", "b"], ["c"]])
