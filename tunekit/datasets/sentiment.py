"""Sentence-level sentiment datasets read from local copies: SST-2 (GLUE) and MR (rt-polarity)."""

from __future__ import annotations

import csv

import numpy as np

from tunekit.datasets._locate import find_data_file
from tunekit.datasets._sampling import choose_rows, take
from tunekit.datasets.files import parse_label_strings, read_csv, read_table

SST2_HOW_TO_GET = (
    "SST-2 is not shipped with tunekit: download GLUE's https://dl.fbaipublicfiles.com/glue/data/SST-2.zip, unzip it "
    "and pass data_dir=<the SST-2 folder> (train.tsv, dev.tsv), or a folder with train.csv(.gz) / dev.csv(.gz) "
    "holding the columns text,label."
)
RT_POLARITY_HOW_TO_GET = (
    "MR (rt-polarity) is not shipped with tunekit: download rt-polaritydata.tar.gz from "
    "https://www.cs.cornell.edu/people/pabo/movie-review-data/ , extract it and pass data_dir=<the rt-polaritydata "
    "folder> (rt-polarity.pos, rt-polarity.neg), or a folder with all.csv(.gz) holding the columns text,label."
)
SST2_SPLIT_FILES = {"train": "train", "validation": "dev"}


def sst2(split: str = "train", *, data_dir, limit: int | None = None, seed: int | None = 0):
    """SST-2 (GLUE's binary Stanford Sentiment Treebank): lower-cased, tokenised movie-review phrases.

    Reads GLUE's `train.tsv` / `dev.tsv` (`sentence<TAB>label`) or `train.csv(.gz)` / `dev.csv(.gz)` (`text,label`)
    from `data_dir` or its sub-folder `SST-2/` or `sst2/`. GLUE's test split has no labels, so the splits are
    "train" (67,349 rows, 56% positive) and "validation" (872 rows, the split papers report).
    Texts are returned exactly as in the files (GLUE's end with a space).

    Args:
        limit: keep this many rows, drawn at random with the label proportions of the split.
        seed: seed of the shuffle and of `limit`'s draw; rows always come shuffled.

    Returns:
        `(texts, labels)`: list of str, int64 array with 0 = negative, 1 = positive.

    Example:
        >>> texts, labels = sst2("validation", data_dir=data_dir)  # e.g. data_dir="shared/data", holding sst2/
        >>> len(texts), round(float(labels.mean()), 3)
        (872, 0.509)
    """
    if split not in SST2_SPLIT_FILES:
        raise ValueError(f"split must be one of {list(SST2_SPLIT_FILES)}, got {split!r}.")
    stem = SST2_SPLIT_FILES[split]
    path = find_data_file(
        data_dir,
        file_names=(f"{stem}.tsv", f"{stem}.csv", f"{stem}.csv.gz"),
        folder_names=("SST-2", "sst2"),
        dataset=f"SST-2 {split}",
        how_to_get=SST2_HOW_TO_GET,
    )
    if path.name.endswith(".tsv"):
        header, rows = read_table(path, delimiter="\t", quoting=csv.QUOTE_NONE)
        if header[:2] != ["sentence", "label"]:
            raise ValueError(f"{path} must have GLUE's columns sentence<TAB>label; its header is {header}.")
        texts = [row[0] for row in rows]
        labels = parse_label_strings([row[1] for row in rows], source=str(path))
    else:
        texts, labels = read_csv(path)
    return _binary_sentiment(texts, labels, source=path, limit=limit, seed=seed)


def rt_polarity(*, data_dir, limit: int | None = None, seed: int | None = 0):
    """MR, the sentence polarity dataset v1.0 of Pang & Lee (2005): 10,662 Rotten Tomatoes snippets, 50% positive.

    There is no official split (papers use 10-fold cross-validation), so all rows are returned, shuffled.
    Reads the original `rt-polarity.neg` / `rt-polarity.pos` (Windows-1252, one snippet per line) or
    `all.csv(.gz)` (`text,label`) from `data_dir` or its sub-folder `rt-polaritydata/` or `rt_polarity/`.
    Texts are kept as released: lower-cased, tokenised, most lines ending with a space.
    Do not train on MR and evaluate on SST-2 (or the reverse): both hold the same snippets.

    Returns:
        `(texts, labels)`: list of str, int64 array with 0 = negative, 1 = positive.

    Example:
        >>> texts, labels = rt_polarity(data_dir=data_dir, limit=100)  # e.g. "shared/data", holding rt_polarity/
        >>> len(texts), int(labels.sum())
        (100, 50)
    """
    folder_names = ("rt-polaritydata", "rt_polarity")
    dataset = "MR (rt-polarity)"
    path = find_data_file(data_dir, file_names=("all.csv", "all.csv.gz", "rt-polarity.neg"),
                          folder_names=folder_names, dataset=dataset, how_to_get=RT_POLARITY_HOW_TO_GET)
    if path.name == "rt-polarity.neg":
        positive_path = path.with_name("rt-polarity.pos")
        if not positive_path.is_file():
            raise FileNotFoundError(f"{dataset}: found {path} but not {positive_path}. {RT_POLARITY_HOW_TO_GET}")
        negative, positive = _snippet_lines(path), _snippet_lines(positive_path)
        texts = negative + positive
        labels = np.array([0] * len(negative) + [1] * len(positive), dtype=np.int64)
    else:
        texts, labels = read_csv(path)
    return _binary_sentiment(texts, labels, source=path, limit=limit, seed=seed)


def _snippet_lines(path) -> list[str]:
    """The lines of an original rt-polarity file (Windows-1252, LF line ends), without their line breaks."""
    lines = path.read_bytes().decode("cp1252").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _binary_sentiment(texts, labels, *, source, limit, seed):
    if labels.dtype != np.int64 or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{source}: labels must be 0 (negative) or 1 (positive).")
    if not texts:
        raise ValueError(f"{source} holds no rows.")
    order = choose_rows(labels, limit=limit, seed=seed, shuffle=True, stratify=True)
    return take(texts, order), labels[order]
