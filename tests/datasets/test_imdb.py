"""tunekit.datasets.imdb: the shipped sample, the aclImdb folder / tar.gz / CSV sources, limit, shuffling, errors."""

import csv
import gzip
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tunekit import datasets


# Made-up reviews named like the official files (<id>_<rating>.txt).
FAKE_REVIEWS = {
    ("train", "neg", "0_2.txt"): "Dull.<br /><br />The plot goes nowhere.",
    ("train", "neg", "1_1.txt"): "Boring film, awful acting.",
    ("train", "neg", "10_4.txt"): "Not worth the ticket.",
    ("train", "pos", "0_9.txt"): "Lovely film. Caf\u00e9 scenes are great.",
    ("train", "pos", "3_10.txt"): "Superb <br />cast.",
    ("test", "neg", "0_3.txt"): "Bad.",
    ("test", "pos", "0_8.txt"): "Fine movie.",
}


def write_acl_imdb(root: Path) -> Path:
    """A tiny aclImdb tree under root, with the extra files of the real one that must be ignored."""
    for (split, folder, name), text in FAKE_REVIEWS.items():
        (root / "aclImdb" / split / folder).mkdir(parents=True, exist_ok=True)
        (root / "aclImdb" / split / folder / name).write_bytes(text.encode("utf-8"))
    (root / "aclImdb" / "train" / "unsup").mkdir()
    (root / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("Unlabelled review.")
    (root / "aclImdb" / "train" / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0000001/usercomments\n")
    (root / "aclImdb" / "README").write_text("Large Movie Review Dataset v1.0 (made-up copy)\n")
    return root / "aclImdb"


def expected_fake(split, *, clean_html=True):
    rows = [(text, int(folder == "pos")) for (s, folder, _), text in FAKE_REVIEWS.items() if s == split]
    if clean_html:
        rows = [(text.replace("<br />", " "), label) for text, label in rows]
    return sorted(rows)


# ----------------------------------------------------------------------------------------------------------------------
# The shipped sample (default source)
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, size", [("train", 3000), ("test", 1000)])
def test_sample_sizes_and_balance(split, size):
    texts, labels = datasets.imdb(split)
    assert len(texts) == len(labels) == size
    assert labels.dtype == np.int64
    assert Counter(labels.tolist()) == {0: size // 2, 1: size // 2}
    assert all(isinstance(text, str) and text for text in texts)
    assert datasets.IMDB_LABELS == ("negative", "positive")


def test_rows_are_shuffled_with_the_seed():
    texts, labels = datasets.imdb("train")
    again_texts, _ = datasets.imdb("train")
    other_texts, other_labels = datasets.imdb("train", seed=1)
    assert texts == again_texts
    assert texts != other_texts and sorted(texts) == sorted(other_texts)
    # Not grouped by label: both classes are spread over the whole order.
    for block in np.array_split(labels, 10):
        assert 0.3 < block.mean() < 0.7
    assert sorted(zip(texts, labels.tolist())) == sorted(zip(other_texts, other_labels.tolist()))


def test_clean_html_replaces_line_breaks():
    raw_texts, _ = datasets.imdb("test", clean_html=False, seed=0)
    clean_texts, _ = datasets.imdb("test", seed=0)
    with_breaks = [i for i, text in enumerate(raw_texts) if "<br />" in text]
    assert 0.4 < len(with_breaks) / len(raw_texts) < 0.75  # about 58% in the official data
    assert not any("<br />" in text for text in clean_texts)
    i = with_breaks[0]
    assert clean_texts[i] == raw_texts[i].replace("<br />", " ")


def test_limit_takes_a_balanced_seeded_subset():
    all_texts, all_labels = datasets.imdb("test")
    label_of = dict(zip(all_texts, all_labels.tolist()))
    texts, labels = datasets.imdb("test", limit=100, seed=3)
    assert len(texts) == 100 and Counter(labels.tolist()) == {0: 50, 1: 50}
    assert all(label_of[text] == label for text, label in zip(texts, labels.tolist()))
    assert datasets.imdb("test", limit=100, seed=3)[0] == texts
    assert set(datasets.imdb("test", limit=100, seed=4)[0]) != set(texts)
    _, odd_labels = datasets.imdb("test", limit=7)
    assert sorted(Counter(odd_labels.tolist()).values()) == [3, 4]


@pytest.mark.parametrize("limit", [0, 1001, -5, 2.5, True])
def test_bad_limit(limit):
    with pytest.raises(ValueError, match=r"limit must be an integer between 1 and 1000"):
        datasets.imdb("test", limit=limit)


# ----------------------------------------------------------------------------------------------------------------------
# Sources given by data_dir
# ----------------------------------------------------------------------------------------------------------------------


def test_aclimdb_folder(tmp_path):
    acl_root = write_acl_imdb(tmp_path)
    for data_dir in (acl_root, tmp_path, str(tmp_path)):  # the aclImdb folder itself, or the folder above it
        texts, labels = datasets.imdb("train", data_dir=data_dir)
        assert sorted(zip(texts, labels.tolist())) == expected_fake("train")
    texts, labels = datasets.imdb("test", data_dir=acl_root, clean_html=False)
    assert sorted(zip(texts, labels.tolist())) == expected_fake("test", clean_html=False)


def write_tar(tmp_path) -> Path:
    write_acl_imdb(tmp_path / "tree")
    archive_path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        archive.add(tmp_path / "tree" / "aclImdb", arcname="aclImdb")
    return archive_path


def test_tar_archive_gives_the_same_rows_as_the_folder(tmp_path):
    archive_path = write_tar(tmp_path)
    for split in ("train", "test"):
        from_tar = datasets.imdb(split, data_dir=archive_path, seed=5)
        from_folder = datasets.imdb(split, data_dir=tmp_path / "tree", seed=5)
        assert from_tar[0] == from_folder[0]  # same rows in the same (seeded) order
        np.testing.assert_array_equal(from_tar[1], from_folder[1])
        assert sorted(zip(from_tar[0], from_tar[1].tolist())) == expected_fake(split)
    # A folder that holds the archive works too.
    texts, _ = datasets.imdb("test", data_dir=tmp_path)
    assert sorted(texts) == ["Bad.", "Fine movie."]


def test_csv_folder(tmp_path):
    with gzip.open(tmp_path / "train.csv.gz", "wt", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows([["A <br />dull, long film.", 0], ["Great, \"fun\" film.", 1], ["Meh.", 0], ["Wow.", 1]])
    texts, labels = datasets.imdb("train", data_dir=tmp_path, limit=2)
    assert len(texts) == 2 and sorted(labels.tolist()) == [0, 1]
    texts, labels = datasets.imdb("train", data_dir=tmp_path)
    assert "A  dull, long film." in texts and 'Great, "fun" film.' in texts


def test_full_official_splits_from_csv(shared_data):
    texts, labels = datasets.imdb("test", data_dir=shared_data("imdb"), clean_html=False)
    assert len(texts) == 25000 and Counter(labels.tolist()) == {0: 12500, 1: 12500}
    assert labels[:1000].mean() == pytest.approx(0.5, abs=0.06)  # shuffled, not grouped


# ----------------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------------


def test_unknown_split():
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\), got 'validation'"):
        datasets.imdb("validation")


def test_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*aclImdb_v1.tar.gz"):
        datasets.imdb(data_dir=tmp_path / "nowhere")


def test_folder_without_imdb_data(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"No IMDB train data in .*expected train/neg/ and train/pos/"):
        datasets.imdb(data_dir=tmp_path)


def test_file_that_is_not_a_tar_archive(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="is not a tar archive"):
        datasets.imdb(data_dir=path)


def test_tar_archive_without_the_split(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (tmp_path / "aclImdb" / "train" / "pos" / "0_9.txt").write_text("Great.")
    archive_path = tmp_path / "partial.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        archive.add(tmp_path / "aclImdb", arcname="aclImdb")
    with pytest.raises(ValueError, match=r"no reviews under aclImdb/test/neg/ and aclImdb/test/pos/"):
        datasets.imdb("test", data_dir=archive_path)
    with pytest.raises(ValueError, match=r"no reviews under aclImdb/train/neg/"):
        datasets.imdb("train", data_dir=archive_path)


def test_empty_review_folder(tmp_path):
    acl_root = write_acl_imdb(tmp_path)
    for review in (acl_root / "test" / "pos").iterdir():
        review.unlink()
    with pytest.raises(ValueError, match="holds no .txt reviews"):
        datasets.imdb("test", data_dir=acl_root)


def test_csv_with_other_labels(tmp_path):
    (tmp_path / "test.csv").write_text("text,label\nGood.,positive\nBad.,negative\n")
    with pytest.raises(ValueError, match=r"must be 0 \(negative\) or 1 \(positive\)"):
        datasets.imdb("test", data_dir=tmp_path)


def test_download_and_data_dir_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="either data_dir or download=True"):
        datasets.imdb(data_dir=tmp_path, download=True)
