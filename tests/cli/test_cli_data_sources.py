"""What the `tunekit` command reads: labelled data for train/evaluate/export, predict's unlabelled input from a
file or stdin, all through `tunekit.datasets`' readers; and the task and labels `train` infers from the data."""

import csv
import io
import sys
import types

import numpy as np
import pytest

from tunekit import datasets
from tunekit.cli.data_sources import (
    NAMED_DATASETS,
    PAIR_DATASETS,
    read_labelled,
    read_unlabelled,
)
from tunekit.cli.errors import UsageError
from tunekit.cli.tasks import infer_head
from tunekit.datasets.pairs import PAIR_DATASETS as READER_PAIR_DATASETS
from tunekit.heads import ClassificationTask, TokenClassificationTask

CLASSIFIER = ClassificationTask(num_classes=2)  # reads texts
TAGGER = TokenClassificationTask(labels=["O", "B-LOC"])  # reads sentences of words


def write_csv(path, texts, labels):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["review", "sentiment"])
        writer.writerows(zip(texts, labels))


def predict_args(fmt=None, text_column="text", text_pair_column=None):
    return types.SimpleNamespace(format=fmt, text_column=text_column, text_pair_column=text_pair_column)


def feed_stdin(monkeypatch, data):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data.encode("utf-8"))))


def test_data_reading_and_head_inference(tmp_path):
    """CoNLL tags, multi-label `a|b` strings and string classes give the task and label names `train` uses."""
    conll = tmp_path / "tags.conll"
    conll.write_text("-DOCSTART- O\n\nAda NNP B-PER\nsings VBZ O\n\nin IN O\nParis NNP B-LOC\n", encoding="utf-8")
    words, tags, _ = read_labelled({"path": str(conll)})
    assert words == [["Ada", "sings"], ["in", "Paris"]]
    assert infer_head({}, True, tags, None) == {"task": "token_classification", "labels": ["O", "B-LOC", "B-PER"]}

    write_csv(tmp_path / "topics.csv", ["a", "b"], ["sports|tech", "tech"])
    spec = {"path": str(tmp_path / "topics.csv"), "text_column": "review", "label_column": "sentiment"}
    _, labels, _ = read_labelled(spec, task="multilabel")
    assert labels == [["sports", "tech"], ["tech"]]
    assert infer_head({"task": "multilabel"}, False, labels, None)["labels"] == ["sports", "tech"]
    _, classes, _ = read_labelled(spec)
    assert infer_head({}, False, classes, None) == {"task": "classification", "labels": ["sports|tech", "tech"]}
    assert infer_head({}, False, np.array([0, 2, 1]), None) == {"task": "classification", "num_classes": 3}
    assert infer_head({}, False, np.array([0.5, 2.0], dtype="float32"), None) == {"task": "regression"}

    records, sentences = read_unlabelled(str(conll), predict_args(), task=TAGGER)
    assert sentences == words and records == [{"words": ["Ada", "sings"]}, {"words": ["in", "Paris"]}]


def test_token_classification_needs_conll(tmp_path):
    write_csv(tmp_path / "tags.csv", ["a"], ["O"])
    with pytest.raises(UsageError, match=r"token_classification reads CoNLL files .*tags.csv is csv"):
        read_labelled({"path": str(tmp_path / "tags.csv")}, task="token_classification")


def test_predict_reads_csv_with_the_csv_reader(tmp_path):
    """A quoted text spanning lines is one text, as read_csv reads it; a gzip'd file reads the same."""
    texts = ['A "great" film,\nin two lines.', "Dull."]
    write_csv(tmp_path / "new.csv", texts, ["", ""])
    records, x = read_unlabelled(str(tmp_path / "new.csv"), predict_args(text_column="review"), task=CLASSIFIER)
    assert x == texts and records == [{"text": text} for text in texts]
    records, x = read_unlabelled(str(tmp_path / "new.csv"), predict_args(text_column="review"), task=TAGGER)
    assert x == [text.split() for text in texts] and records[1] == {"text": "Dull.", "words": ["Dull."]}


@pytest.mark.parametrize(
    "fmt, data, expected",
    [
        ("text", "One.\n\n  \nTwo.\n", (["One.", "Two."], None)),
        ("csv", "q,a\nHi?,Hello.\nWhy?,No.\n", (["Hi?", "Why?"], ["Hello.", "No."])),
        ("jsonl", '{"q": "Hi?", "a": "Hello."}\n\n{"q": "Why?", "a": "No."}\n', (["Hi?", "Why?"], ["Hello.", "No."])),
    ],
)
def test_predict_reads_stdin_in_every_format(monkeypatch, fmt, data, expected):
    feed_stdin(monkeypatch, data)
    pair_column = None if fmt == "text" else "a"
    records, x = read_unlabelled("-", predict_args(fmt, text_column="q", text_pair_column=pair_column),
                                 task=CLASSIFIER)
    texts, pairs = expected
    assert x == (texts if pairs is None else (texts, pairs))
    assert records[0] == ({"text": "One."} if pairs is None else {"text": "Hi?", "text_pair": "Hello."})


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("jsonl", '{"text": "fine"}\nnot json\n', "stdin, line 2: not valid JSON"),
        ("csv", "review\nfine\n", "stdin has no column 'text'; its columns are ['review']"),
        ("text", "\n\n", "-: no texts to predict."),
    ],
)
def test_bad_stdin_is_refused_naming_stdin(monkeypatch, fmt, data, message):
    feed_stdin(monkeypatch, data)
    with pytest.raises(UsageError) as error:
        read_unlabelled("-", predict_args(fmt), task=CLASSIFIER)
    assert message in str(error.value)


def test_conll_input_for_a_text_model_is_refused_before_reading(tmp_path):
    (tmp_path / "words.conll").write_text("Ada\nsings\n", encoding="utf-8")
    with pytest.raises(UsageError, match="only token classification takes; pass --format text, csv or jsonl"):
        read_unlabelled(str(tmp_path / "words.conll"), predict_args(), task=CLASSIFIER)
    with pytest.raises(UsageError, match="--text-pair-column needs CSV or JSONL input"):
        read_unlabelled("-", predict_args(text_pair_column="b"), task=CLASSIFIER)
    with pytest.raises(UsageError, match="input file 'nothing.txt' does not exist"):
        read_unlabelled("nothing.txt", predict_args(), task=CLASSIFIER)


def test_named_datasets_are_the_readers():
    assert PAIR_DATASETS == tuple(READER_PAIR_DATASETS)
    for name in set(NAMED_DATASETS) - set(PAIR_DATASETS):
        assert callable(getattr(datasets, name))
