"""The IMDB samples shipped in tunekit/datasets/data/ and the script that builds them."""

import csv
import gzip
from importlib import resources

import pytest

from tunekit.datasets import make_samples

SAMPLE_DIR = resources.files("tunekit.datasets") / "data"
MAX_SAMPLE_BYTES = 2_500_000


def read_rows(path) -> list[tuple[str, int]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        assert next(reader) == ["text", "label"]
        return [(text, int(label)) for text, label in reader]


def shipped(split) -> list[tuple[str, int]]:
    return read_rows(SAMPLE_DIR / f"imdb_{split}_sample.csv.gz")


@pytest.mark.parametrize("split, size", [("train", 3000), ("test", 1000)])
def test_shipped_files_are_small_unique_and_keep_the_raw_text(split, size):
    path = SAMPLE_DIR / f"imdb_{split}_sample.csv.gz"
    assert path.stat().st_size < MAX_SAMPLE_BYTES
    rows = shipped(split)
    assert len(rows) == size and sum(label for _, label in rows) == size // 2
    assert len({text for text, _ in rows}) == size
    assert any("<br />" in text for text, _ in rows)  # stored verbatim; imdb() cleans on reading


def test_train_and_test_samples_share_no_review():
    assert not {text for text, _ in shipped("train")} & {text for text, _ in shipped("test")}


def test_samples_come_from_their_official_split_and_never_from_the_other(shared_data):
    official = {split: make_samples.read_split(shared_data("imdb") / f"{split}.csv.gz") for split in ("train", "test")}
    for split, other in (("train", "test"), ("test", "train")):
        sample = shipped(split)
        assert set(sample) <= set(official[split])  # same text, same label
        assert not {text for text, _ in sample} & {text for text, _ in official[other]}


def test_script_rebuilds_the_shipped_files_byte_for_byte(tmp_path, capsys, shared_data):
    make_samples.main(["--source", str(shared_data("imdb").parent), "--output", str(tmp_path)])
    for split in ("train", "test"):
        name = f"imdb_{split}_sample.csv.gz"
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes()
    assert "3000 rows (1500 negative, 1500 positive)" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["imdb_test_sample.csv.gz", "imdb_train_sample.csv.gz"]


def test_draw_excludes_shared_and_duplicated_reviews():
    def made_up(split, label, count):
        return [(f"{split} review {label} number {i}", label) for i in range(count)]

    shared = [("Seen in both splits.", 1)]
    duplicated = [("Posted twice.", 0), ("Posted twice.", 0)]
    splits = {
        "train": made_up("train", 0, 1500) + made_up("train", 1, 1500) + shared + duplicated,
        "test": made_up("test", 0, 500) + made_up("test", 1, 500) + shared,
    }
    # Exactly enough eligible rows per class: the draw must take all of them and nothing else.
    samples = make_samples.draw_samples(splits, seed=0)
    assert sorted(samples["train"]) == sorted(made_up("train", 0, 1500) + made_up("train", 1, 1500))
    assert sorted(samples["test"]) == sorted(made_up("test", 0, 500) + made_up("test", 1, 500))
    assert samples["test"] != sorted(samples["test"])  # written in random order


def test_write_sample_is_reproducible_and_leaves_no_temporary_file(tmp_path):
    rows = [('Quote " and comma, kept.', 1), ("Line<br />break.", 0)]
    make_samples.write_sample(rows, tmp_path / "a.csv.gz")
    first_bytes = (tmp_path / "a.csv.gz").read_bytes()
    make_samples.write_sample(rows, tmp_path / "a.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == first_bytes
    assert read_rows(tmp_path / "a.csv.gz") == rows
    assert [path.name for path in tmp_path.iterdir()] == ["a.csv.gz"]
