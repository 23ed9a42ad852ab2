"""The IMDB Large Movie Review dataset (Maas et al., 2011) as raw review texts with 0/1 sentiment labels."""

from __future__ import annotations

import re
import tarfile
from importlib import resources
from pathlib import Path

import numpy as np

from tunekit.datasets._sampling import choose_rows, take
from tunekit.datasets.files import read_csv

IMDB_LABELS = ("negative", "positive")
IMDB_SPLITS = ("train", "test")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
IMDB_HOW_TO_GET = (
    f"Pass data_dir=<the extracted aclImdb folder>, <the path of aclImdb_v1.tar.gz> (from {IMDB_URL}) or <a folder "
    "with train.csv(.gz) / test.csv(.gz) holding the columns text,label>; or download=True to fetch the archive "
    "(84 MB) into the Keras cache."
)
SAMPLE_FILE_NAME = "imdb_{split}_sample.csv.gz"
SENTIMENT_FOLDERS = {"neg": 0, "pos": 1}
_ARCHIVE_REVIEW = re.compile(r"^(?:\./)?aclImdb/(train|test)/(neg|pos)/([^/]+\.txt)$")


def imdb(
    split: str = "train",
    *,
    data_dir=None,
    limit: int | None = None,
    seed: int | None = 0,
    clean_html: bool = True,
    download: bool = False,
):
    """IMDB movie reviews and their sentiment (0 = negative, 1 = positive; names in `IMDB_LABELS`).

    Where the reviews come from:
    - By default, a sample of the official splits shipped with tunekit (no download): 3,000 train reviews
      (1,500 per class) and 1,000 test reviews (500 per class), drawn at random from the official 25,000 / 25,000
      without the reviews that occur in both splits or twice in one (see `tunekit.datasets.make_samples`).
    - `data_dir`: the full official data, as the extracted `aclImdb` folder (`train/pos/*.txt`, ...; or a folder
      holding it), the path of `aclImdb_v1.tar.gz` itself (read without extracting it), or a folder with
      `train.csv(.gz)` / `test.csv(.gz)` holding the columns `text,label`.
    - `download=True`: the official archive, fetched once from Stanford into the Keras cache
      (`~/.keras/datasets`) with `keras.utils.get_file` and checked against its MD5.

    Args:
        split: "train" or "test".
        limit: keep this many reviews, drawn at random with equal numbers per class (one more of one class when odd).
        seed: seed of the shuffle and of `limit`'s draw (None: a fresh random order each call). Rows always come
            shuffled, never grouped by label.
        clean_html: replace the `<br />` line breaks that about 58% of reviews contain with a space.

    Returns:
        `(texts, labels)`: list of str, int64 array.

    Example:
        >>> texts, labels = imdb("test", limit=10)
        >>> len(texts), int(labels.sum()), IMDB_LABELS[labels[0]] in IMDB_LABELS
        (10, 5, True)
    """
    if split not in IMDB_SPLITS:
        raise ValueError(f"split must be one of {IMDB_SPLITS}, got {split!r}.")
    if download and data_dir is not None:
        raise ValueError("Pass either data_dir or download=True, not both.")

    if download:
        texts, labels = _read_archive(_download_archive(), split)
    elif data_dir is not None:
        texts, labels = _read_data_dir(Path(data_dir).expanduser(), split)
    else:
        sample = resources.files("tunekit.datasets") / "data" / SAMPLE_FILE_NAME.format(split=split)
        with resources.as_file(sample) as sample_path:
            texts, labels = read_csv(sample_path)

    if labels.dtype != np.int64 or not np.isin(labels, (0, 1)).all():
        raise ValueError("IMDB labels must be 0 (negative) or 1 (positive).")
    if clean_html:
        texts = [text.replace("<br />", " ") for text in texts]
    order = choose_rows(labels, limit=limit, seed=seed, shuffle=True, stratify=True)
    return take(texts, order), labels[order]


def _read_data_dir(path: Path, split: str):
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise ValueError(f"{path} is not a tar archive. {IMDB_HOW_TO_GET}")
        return _read_archive(path, split)
    if not path.is_dir():
        raise FileNotFoundError(f"IMDB data_dir {str(path)!r} does not exist. {IMDB_HOW_TO_GET}")
    for review_root in (path, path / "aclImdb"):
        if all((review_root / split / folder).is_dir() for folder in SENTIMENT_FOLDERS):
            return _read_review_folders(review_root / split)
    for name in (f"{split}.csv", f"{split}.csv.gz"):
        if (path / name).is_file():
            return read_csv(path / name)
    if (path / "aclImdb_v1.tar.gz").is_file():
        return _read_archive(path / "aclImdb_v1.tar.gz", split)
    raise FileNotFoundError(
        f"No IMDB {split} data in {path}: expected {split}/neg/ and {split}/pos/ (also under aclImdb/), "
        f"{split}.csv(.gz) or aclImdb_v1.tar.gz. {IMDB_HOW_TO_GET}"
    )


def _read_review_folders(split_dir: Path):
    """Reviews of `<split>/neg/*.txt` and `<split>/pos/*.txt`, in label then file-name order."""
    texts, labels = [], []
    for folder, label in SENTIMENT_FOLDERS.items():
        files = sorted((split_dir / folder).glob("*.txt"))
        if not files:
            raise ValueError(f"{split_dir / folder} holds no .txt reviews. {IMDB_HOW_TO_GET}")
        texts += [file.read_bytes().decode("utf-8") for file in files]
        labels += [label] * len(files)
    return texts, np.array(labels, dtype=np.int64)


def _read_archive(archive_path: Path, split: str):
    """Reviews of one split read straight from `aclImdb_v1.tar.gz`, in label then file-name order."""
    reviews = []
    with tarfile.open(archive_path, mode="r|*") as archive:  # one streaming pass, nothing extracted
        for member in archive:
            match = _ARCHIVE_REVIEW.match(member.name)
            if member.isfile() and match and match.group(1) == split:
                text = archive.extractfile(member).read().decode("utf-8")
                reviews.append((SENTIMENT_FOLDERS[match.group(2)], match.group(3), text))
    found_labels = {label for label, _, _ in reviews}
    if found_labels != {0, 1}:
        raise ValueError(
            f"{archive_path} has no reviews under aclImdb/{split}/neg/ and aclImdb/{split}/pos/ (or only under one). "
            f"{IMDB_HOW_TO_GET}"
        )
    reviews.sort(key=lambda review: review[:2])
    return [text for _, _, text in reviews], np.array([label for label, _, _ in reviews], dtype=np.int64)


def _download_archive() -> Path:
    import keras  # imported here: only the download needs it

    return Path(keras.utils.get_file(
        fname="aclImdb_v1.tar.gz", origin=IMDB_URL, file_hash=IMDB_ARCHIVE_MD5, hash_algorithm="md5"
    ))
