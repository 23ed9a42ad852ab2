"""tunekit.datasets.sentence_pairs on made-up GLUE TSV and CSV copies, and on the real data."""

from collections import Counter

import numpy as np
import pytest

from tunekit import datasets

def test_mrpc_from_glue_tsv(tmp_path):
    folder = tmp_path / "MRPC"
    folder.mkdir()
    # GLUE copies MRPC's header with its byte-order mark; texts hold bare quotes.
    (folder / "train.tsv").write_text(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        '1\t11\t12\tHe called it " the witness " .\tHe said " the witness " .\n'
        "0\t21\t22\tShares rose .\tShares fell .\n",
        encoding="utf-8",
    )
    (first, second), labels = datasets.sentence_pairs("mrpc", "train", data_dir=tmp_path)
    rows = sorted(zip(first, second, labels.tolist()))
    assert rows == [('He called it " the witness " .', 'He said " the witness " .', 1),
                    ("Shares rose .", "Shares fell .", 0)]
    assert labels.dtype == np.int64


def test_stsb_from_glue_tsv(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    (tmp_path / "dev.tsv").write_text(
        header
        + "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man plays .\tA man is playing .\t5.000\n"
        + "1\tmain-news\theadlines\t2013\t0001\tnone\tnone\tTalks end\tTalks enter third day\t1.2\n"
    )
    (first, second), scores = datasets.sentence_pairs("stsb", "validation", data_dir=tmp_path, seed=None)
    assert scores.dtype == np.float32
    assert sorted(zip(first, scores.tolist())) == [("A man plays .", 5.0), ("Talks end", pytest.approx(1.2))]


def test_rte_from_glue_tsv_maps_label_names(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\tA dog barks loudly.\tA dog barks.\tentailment\n"
        "1\tIt rained.\tIt was sunny.\tnot_entailment\n"
    )
    (first, second), labels = datasets.sentence_pairs("rte", data_dir=tmp_path)
    assert dict(zip(second, labels.tolist())) == {"A dog barks.": 1, "It was sunny.": 0}


def test_csv_layout_including_a_labelled_test_split(tmp_path):
    rows = "".join(f'"sentence {i}, a","sentence {i}, b",{int(i % 3 == 0)}\n' for i in range(30))
    (tmp_path / "mrpc").mkdir()
    (tmp_path / "mrpc" / "test.csv").write_text("text_a,text_b,label\n" + rows)
    (first, second), labels = datasets.sentence_pairs("mrpc", "test", data_dir=tmp_path)
    assert len(first) == 30 and first != sorted(first)  # shuffled
    assert all(a.replace(", a", "") == b.replace(", b", "") for a, b in zip(first, second))  # pairs stay together
    (first, _), labels = datasets.sentence_pairs("mrpc", "test", data_dir=tmp_path, limit=9, seed=1)
    assert Counter(labels.tolist()) == {0: 6, 1: 3}


def test_stsb_csv_with_whole_number_scores_gives_floats(tmp_path):
    (tmp_path / "train.csv").write_text("text_a,text_b,label\nA,B,5\nC,D,0\n")
    _, scores = datasets.sentence_pairs("stsb", "train", data_dir=tmp_path)
    assert scores.dtype == np.float32 and sorted(scores.tolist()) == [0.0, 5.0]


def test_sentence_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match=r"name must be one of \['mrpc', 'stsb', 'rte'\], got 'qqp'"):
        datasets.sentence_pairs("qqp", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'validation', 'test'\], got 'dev'"):
        datasets.sentence_pairs("rte", "dev", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"RTE validation: found none of \['dev.tsv', .*RTE.zip"):
        datasets.sentence_pairs("rte", "validation", data_dir=tmp_path)
    # GLUE's test.tsv has no labels: it is never read.
    (tmp_path / "test.tsv").write_text("index\tsentence1\tsentence2\n0\tA.\tB.\n")
    with pytest.raises(FileNotFoundError, match=r"STS-B test: found none of \['test.csv', 'test.csv.gz'\]"):
        datasets.sentence_pairs("stsb", "test", data_dir=tmp_path)


@pytest.mark.parametrize(
    "name, file_name, content, message",
    [
        ("rte", "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tneutral\n",
         r"unknown labels \['neutral'\]"),
        ("rte", "train.tsv", "index\tsentence1\tlabel\n0\tA.\tentailment\n",
         r"lacks GLUE's RTE columns \['sentence2'\]"),
        ("stsb", "train.csv", "text_a,text_b,label\nA,B,7.5\n", "STS-B labels must be scores from 0 to 5"),
        ("mrpc", "train.csv", "text_a,text_b,label\nA,B,yes\n", "MRPC labels must be 0 or 1"),
        ("mrpc", "train.csv", "text_a,label\nA,1\n", "has no column 'text_b'"),
    ],
)
def test_bad_files(tmp_path, name, file_name, content, message):
    (tmp_path / file_name).write_text(content)
    with pytest.raises(ValueError, match=message):
        datasets.sentence_pairs(name, "train", data_dir=tmp_path)


@pytest.mark.parametrize(
    "name, split, rows, label_sum",
    [
        ("mrpc", "train", 3668, 2474), ("mrpc", "validation", 408, 279), ("mrpc", "test", 1725, 1147),
        ("rte", "train", 2490, 1249), ("rte", "validation", 277, 146),
        ("stsb", "validation", 1500, None),
    ],
)
def test_real_pairs(name, split, rows, label_sum, shared_data):
    (first, second), labels = datasets.sentence_pairs(name, split, data_dir=shared_data(name).parent)
    assert len(first) == len(second) == len(labels) == rows
    if label_sum is None:
        assert labels.dtype == np.float32 and labels.mean() == pytest.approx(2.364, abs=1e-3)
    else:
        assert int(labels.sum()) == label_sum
