"""tunekit.datasets.read_conll on made-up CoNLL files (CoNLL-2003 text itself may not be copied here)."""

import gzip
import io

import pytest

from tunekit import datasets
from tunekit.metrics import extract_entities

# Made-up sentences in CoNLL-2003's layout, with its quirks: a -DOCSTART- line at the start and at the end,
# runs of blank lines, an IOB1 entity that starts with I-, and no final newline.
MADE_UP = """-DOCSTART- -X- -X- O

Ada NNP B-NP I-PER
Lovelace NNP I-NP I-PER
met VBD B-VP O
Charles NNP B-NP I-PER
Babbage NNP I-NP I-PER
in IN B-PP O
London NNP B-NP I-LOC
. . O O


-DOCSTART- -X- -X- O

Paris NNP B-NP I-LOC
Lyon NNP I-NP B-LOC

-DOCSTART- -X- O O
Hi UH B-INTJ O"""


def test_reads_words_and_ner_tags(tmp_path):
    path = tmp_path / "made_up.conll"
    path.write_text(MADE_UP)
    words, tags = datasets.read_conll(path)
    assert words == [
        ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "."],
        ["Paris", "Lyon"],
        ["Hi"],
    ]
    assert tags == [["I-PER", "I-PER", "O", "I-PER", "I-PER", "O", "I-LOC", "O"], ["I-LOC", "B-LOC"], ["O"]]
    assert extract_entities(tags[1], scheme="IOB1") == [("LOC", 0, 1), ("LOC", 1, 2)]


def test_gzip_tabs_and_column_choice(tmp_path):
    path = tmp_path / "made_up.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(MADE_UP.replace(" ", "\t") + "\n")
    words, pos_tags = datasets.read_conll(path, column=1)
    assert words[1] == ["Paris", "Lyon"] and pos_tags[1] == ["NNP", "NNP"]
    _, chunk_tags = datasets.read_conll(path, column=2)
    assert chunk_tags[2] == ["B-INTJ"]


def test_column_out_of_range(tmp_path):
    path = tmp_path / "two_columns.conll"
    path.write_text("Ada B-PER\nsings O\n")
    assert datasets.read_conll(path) == ([["Ada", "sings"]], [["B-PER", "O"]])
    with pytest.raises(ValueError, match="line 1: 2 columns, so there is no column 3"):
        datasets.read_conll(path, column=3)


def test_file_without_sentences(tmp_path):
    path = tmp_path / "empty.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\n\n")
    with pytest.raises(ValueError, match="holds no sentences"):
        datasets.read_conll(path)
    with pytest.raises(FileNotFoundError, match="No such file"):
        datasets.read_conll(tmp_path / "absent.conll")


@pytest.mark.parametrize(
    "file_name, sentences, tokens",
    [("eng.train.gz", 14041, 203621), ("eng.testa.gz", 3250, 51362), ("iob2/test.txt.gz", 3453, 46435)],
)
def test_real_conll2003_counts(file_name, sentences, tokens, shared_data):
    words, tags = datasets.read_conll(shared_data("conll2003") / file_name)
    assert len(words) == len(tags) == sentences
    assert sum(map(len, words)) == sum(map(len, tags)) == tokens
    assert {tag for sentence in tags for tag in sentence} <= {"O"} | {
        f"{prefix}-{kind}" for prefix in "BI" for kind in ("PER", "LOC", "ORG", "MISC")
    }


def test_read_conll_from_a_stream_of_words_alone():
    """A one-column stream (words to tag, e.g. stdin) reads: each word is its own tag, which callers ignore."""
    stream = io.StringIO("-DOCSTART-\n\nAda\nsings\n\nHi\n")
    stream.name = "stdin"
    assert datasets.read_conll(stream) == ([["Ada", "sings"], ["Hi"]], [["Ada", "sings"], ["Hi"]])
    stream = io.StringIO("Ada\n")
    stream.name = "stdin"
    with pytest.raises(ValueError, match="stdin, line 1: 1 columns, so there is no column 2"):
        datasets.read_conll(stream, column=2)
