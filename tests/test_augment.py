"""`tunekit.augment`: seeded, label-keeping text augmentations that never return an empty text."""

import pytest
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit import augment
from tunekit.augment import as_augmentation, augmented

SYNONYMS = {"good": ["fine", "great"], "bad": ["poor", "awful"], "movie": ["film"], "plot": ["story"]}
ALL = [augment.SynonymReplacement(0.3, SYNONYMS), augment.RandomInsertion(0.3, SYNONYMS), augment.RandomSwap(0.3),
       augment.RandomDeletion(0.3), augment.SpanCutoff(0.3)]


@pytest.mark.parametrize("augmentation", ALL, ids=repr)
def test_augmentations_are_seeded_keep_labels_and_change_texts(augmentation):
    texts, labels = sentiment_texts(40)
    first = augmentation(texts, list(labels), seed=7)
    assert first == augmentation(texts, list(labels), seed=7)  # same seed, same texts
    assert first != augmentation(texts, list(labels), seed=8)
    assert first[1] == list(labels)
    assert sum(a != b for a, b in zip(first[0], texts)) >= 20  # most texts changed
    assert all(text.strip() for text in first[0])


@pytest.mark.parametrize("augmentation", [augment.RandomDeletion(1.0), augment.SpanCutoff(1.0),
                                          augment.RandomSwap(1.0)], ids=repr)
def test_never_an_empty_text(augmentation):
    texts, _ = augmentation(["one", "two words", "a few more words here"], [0, 1, 0], seed=0)
    assert all(len(text.split()) >= 1 for text in texts)
    assert texts[0] == "one"


def test_synonym_replacement_uses_only_the_given_synonyms_and_leaves_function_words():
    texts, _ = augment.SynonymReplacement(1.0, SYNONYMS)(["the good movie and the bad plot"], [1], seed=0)
    the, good, movie, and_, the_again, bad, plot = texts[0].split()
    assert (the, and_, the_again) == ("the", "and", "the")
    assert good in ("fine", "great") and movie == "film" and bad in ("poor", "awful") and plot == "story"


def test_token_tags_stay_aligned_or_the_augmentation_refuses():
    sentences, tags = [["good", "movie", "in", "Paris"]], [["O", "O", "O", "B-LOC"]]
    words, new_tags = augment.SynonymReplacement(1.0, SYNONYMS)(sentences, tags, seed=0)
    assert len(words[0]) == len(new_tags[0]) == 4 and new_tags == tags and words[0][3] == "Paris"
    for other in ALL[1:]:
        with pytest.raises(ValueError, match="cannot keep token-classification tags aligned"):
            other(sentences, tags, seed=0)


@pytest.mark.parametrize("probability", [-0.1, 1.5, "0.2", True, float("nan")])
def test_probabilities_outside_zero_to_one_are_refused(probability):
    with pytest.raises(ValueError, match="must be a number from 0 to 1"):
        augment.RandomSwap(probability)


def test_synonym_augmentations_need_a_source():
    with pytest.raises(TypeError, match="needs synonyms"):
        augment.SynonymReplacement(0.1)


def test_a_list_composes_and_a_function_is_checked():
    composed = as_augmentation([augment.RandomSwap(0.5), augment.RandomDeletion(0.2)])
    assert composed(["a b c d e f"], [1], seed=1) == composed(["a b c d e f"], [1], seed=1)
    with pytest.raises(TypeError, match="augment must be"):
        as_augmentation([augment.RandomSwap(0.1), "swap"])
    with pytest.raises(ValueError, match="returned 1 texts and 2 labels for 2"):
        augmented(lambda texts, labels, seed: (texts[:1], labels), ["a", "b"], [0, 1], 0)
    with pytest.raises(ValueError, match="turned text 0"):
        augmented(lambda texts, labels, seed: (["", "b"], labels), ["a", "b"], [0, 1], 0)


def test_embedding_synonyms_are_the_encoders_nearest_whole_words():
    synonyms = augment.EmbeddingSynonyms(tk.load_backbone("minilm-l6"))
    assert {"film", "movies"} <= set(synonyms("movie"))
    assert {"horrible", "awful"} & set(synonyms("Terrible"))
    assert synonyms("xyzzy") == [] and all(not word.startswith("##") for word in synonyms("actor"))
