"""tunekit.datasets.read_csv and read_jsonl on made-up files."""

import gzip
import io
import json

import numpy as np
import pytest

from tunekit import datasets


def write_csv(path, text, *, compress=False):
    if compress:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as file:
            file.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def test_read_csv_keeps_file_order_and_parses_quotes(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", 'text,label\n"Great, really.",1\n"Said ""meh""\nthen left.",0\nOk.,2\n')
    texts, labels = datasets.read_csv(path)
    assert texts == ["Great, really.", 'Said "meh"\nthen left.', "Ok."]
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 2]


def test_read_csv_gzip_bom_and_column_names(tmp_path):
    path = write_csv(tmp_path / "data.csv.gz", "\ufeffid,review,stars\n7,Fine.,4.5\n8,Poor.,1\n", compress=True)
    texts, labels = datasets.read_csv(path, text_column="review", label_column="stars")
    assert texts == ["Fine.", "Poor."]
    assert labels.dtype == np.float32 and labels.tolist() == [4.5, 1.0]


def test_read_csv_string_labels_and_pairs(tmp_path):
    path = write_csv(tmp_path / "nli.csv", "premise,hypothesis,label\nA man sleeps.,Someone rests.,entailment\n"
                                           "A cat runs.,A dog sits.,contradiction\n")
    (premises, hypotheses), labels = datasets.read_csv(path, text_column="premise", text_pair_column="hypothesis")
    assert premises == ["A man sleeps.", "A cat runs."] and hypotheses == ["Someone rests.", "A dog sits."]
    assert labels.tolist() == ["entailment", "contradiction"]


def test_read_csv_limit_and_seed(tmp_path):
    lines = "".join(f"text {i},{int(i < 30)}\n" for i in range(100))
    path = write_csv(tmp_path / "many.csv", "text,label\n" + lines)
    texts, _ = datasets.read_csv(path, limit=3)
    assert texts == ["text 0", "text 1", "text 2"]  # no seed: the first rows, in file order
    shuffled, labels = datasets.read_csv(path, limit=10, seed=0)
    assert shuffled == datasets.read_csv(path, limit=10, seed=0)[0]
    assert shuffled != [f"text {i}" for i in range(10)]
    assert labels.sum() == 3  # stratified: 30% positive
    all_shuffled, _ = datasets.read_csv(path, seed=1)
    assert sorted(all_shuffled) == sorted(f"text {i}" for i in range(100))


@pytest.mark.parametrize(
    "content, kwargs, error, message",
    [
        ("text,label\nA,1\n", {"text_column": "review"}, ValueError,
         r"has no column 'review'; its columns are \['text', 'label'\]"),
        ("text,label\nA,1\nB\n", {}, ValueError, "line 3: 1 fields but the header has 2"),
        ("text,label\nA,1\nB, \n", {}, ValueError, "data row 2 has an empty label"),
        ("text,label\n", {}, ValueError, "has a header but no rows"),
        ("", {}, ValueError, "is empty"),
        ("text,label\nA,1\n", {"limit": 5}, ValueError, "limit must be an integer between 1 and 1"),
    ],
)
def test_read_csv_errors(tmp_path, content, kwargs, error, message):
    path = write_csv(tmp_path / "bad.csv", content)
    with pytest.raises(error, match=message):
        datasets.read_csv(path, **kwargs)


def test_read_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file: .*missing.csv"):
        datasets.read_csv(tmp_path / "missing.csv")


def write_jsonl(path, records, *, compress=False):
    text = "".join(json.dumps(record) + "\n" for record in records) + "\n"  # a trailing blank line
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8") as file:
        file.write(text)
    return path


def test_read_jsonl_types(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "Yes!", "label": True}, {"text": "No.", "label": 0}])
    texts, labels = datasets.read_jsonl(path)
    assert texts == ["Yes!", "No."] and labels.dtype == np.int64 and labels.tolist() == [1, 0]
    path = write_jsonl(tmp_path / "b.jsonl.gz", [{"t": "x", "y": 0.5}, {"t": "z", "y": 2}], compress=True)
    texts, labels = datasets.read_jsonl(path, text_column="t", label_column="y")
    assert labels.dtype == np.float32 and labels.tolist() == [0.5, 2.0]
    path = write_jsonl(tmp_path / "c.jsonl", [{"q": "Why?", "a": "Because.", "label": "good"}])
    (questions, answers), labels = datasets.read_jsonl(path, text_column="q", text_pair_column="a")
    assert (questions, answers, labels.tolist()) == (["Why?"], ["Because."], ["good"])


def test_read_jsonl_limit_and_seed(tmp_path):
    path = write_jsonl(tmp_path / "many.jsonl", [{"text": f"t{i}", "label": i % 2} for i in range(20)])
    assert datasets.read_jsonl(path, limit=2)[0] == ["t0", "t1"]
    texts, labels = datasets.read_jsonl(path, limit=10, seed=0)
    assert labels.sum() == 5 and texts != [f"t{i}" for i in range(10)]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "a", "label": 1}\n{"text": "b", "label": 1\n', "line 2: not valid JSON"),
        ('["a", 1]\n', "line 1: expected a JSON object, got list"),
        ('{"text": "a", "label": 1}\n{"label": 0}\n', r"line 2 has no field 'text'; it has \['label'\]"),
        ('{"text": 5, "label": 1}\n', "field 'text' must be a string"),
        ('{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n', r"labels must be all integers.*\['int', 'str'\]"),
        ("\n\n", "holds no records"),
    ],
)
def test_read_jsonl_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        datasets.read_jsonl(path)


def test_read_texts_without_labels_from_a_stream():
    """`label_column=None` reads the texts alone (to predict); an open stream is read and named by its `name`."""
    stream = io.StringIO('review,stars\n"Great,\nreally.",\nDull.,\n')
    stream.name = "stdin"
    assert datasets.read_csv(stream, text_column="review", label_column=None) == (["Great,\nreally.", "Dull."], None)
    assert not stream.closed
    lines = io.StringIO('{"q": "Hi?", "a": "Hello."}\n{"q": "Why?", "a": "No."}\n')
    assert datasets.read_jsonl(lines, text_column="q", text_pair_column="a", label_column=None) == (
        (["Hi?", "Why?"], ["Hello.", "No."]), None)
    texts, labels = datasets.read_jsonl(io.StringIO("".join(f'{{"text": "{i}"}}\n' for i in range(10))),
                                        label_column=None, limit=3, seed=0)
    assert labels is None and len(set(texts)) == 3 and set(texts) <= {str(i) for i in range(10)}
    bad = io.StringIO('{"text": "fine"}\n[1]\n')
    bad.name = "stdin"
    with pytest.raises(ValueError, match="stdin, line 2: expected a JSON object, got list"):
        datasets.read_jsonl(bad, label_column=None)
    unnamed = io.StringIO("review\nfine\n")
    with pytest.raises(ValueError, match="<stream> has no column 'text'"):
        datasets.read_csv(unnamed, label_column=None)
