"""Sentence-pair datasets of GLUE read from local copies: MRPC (paraphrase), STS-B (similarity), RTE (entailment)."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from tunekit.datasets._locate import find_data_file
from tunekit.datasets._sampling import choose_rows, take
from tunekit.datasets.files import parse_label_strings, read_csv, read_table


@dataclass(frozen=True)
class PairDataset:
    title: str
    folder_names: tuple[str, ...]
    # Columns of GLUE's train.tsv / dev.tsv: first text, second text, label.
    glue_columns: tuple[str, str, str]
    how_to_get: str
    is_regression: bool = False
    # GLUE's label strings, where they are not numbers.
    glue_label_ids: dict[str, int] | None = None


PAIR_DATASETS = {
    "mrpc": PairDataset(
        title="MRPC",
        folder_names=("MRPC", "mrpc"),
        glue_columns=("#1 String", "#2 String", "Quality"),
        how_to_get=(
            "MRPC is not shipped with tunekit (Microsoft Research licence, non-commercial): build GLUE's MRPC folder "
            "(train.tsv, dev.tsv) with GLUE's download_glue_data.py from Microsoft's MSRParaphraseCorpus "
            "(https://www.microsoft.com/en-us/download/details.aspx?id=52398) and pass data_dir=<that folder>, "
            "or a folder with train/dev/test.csv(.gz) holding the columns text_a,text_b,label."
        ),
    ),
    "stsb": PairDataset(
        title="STS-B",
        folder_names=("STS-B", "stsb"),
        glue_columns=("sentence1", "sentence2", "score"),
        is_regression=True,
        how_to_get=(
            "STS-B is not shipped with tunekit: download GLUE's https://dl.fbaipublicfiles.com/glue/data/STS-B.zip, "
            "unzip it and pass data_dir=<the STS-B folder> (train.tsv, dev.tsv), or a folder with "
            "train/dev/test.csv(.gz) holding the columns text_a,text_b,label."
        ),
    ),
    "rte": PairDataset(
        title="RTE",
        folder_names=("RTE", "rte"),
        glue_columns=("sentence1", "sentence2", "label"),
        glue_label_ids={"not_entailment": 0, "entailment": 1},
        how_to_get=(
            "RTE is not shipped with tunekit: download GLUE's https://dl.fbaipublicfiles.com/glue/data/RTE.zip, "
            "unzip it and pass data_dir=<the RTE folder> (train.tsv, dev.tsv), or a folder with "
            "train/dev.csv(.gz) holding the columns text_a,text_b,label."
        ),
    ),
}
SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}


def sentence_pairs(name: str, split: str = "train", *, data_dir, limit: int | None = None, seed: int | None = 0):
    """Sentence pairs and labels of MRPC, STS-B or RTE (GLUE versions).

    - "mrpc": 1 = paraphrase, 0 = not (train 3,668 / validation 408; test 1,725 only from a labelled CSV).
    - "stsb": similarity score from 0 to 5, float32 (train 5,749 / validation 1,500; test 1,379 from a labelled CSV).
    - "rte": 1 = entailment, 0 = not_entailment (train 2,490 / validation 277).

    Reads GLUE's `train.tsv` / `dev.tsv`, or `train.csv(.gz)` / `dev.csv(.gz)` / `test.csv(.gz)` with the columns
    `text_a,text_b,label`, from `data_dir` or its sub-folder named after the task (`MRPC/`, `mrpc/`, ...).
    GLUE's own `test.tsv` files have no labels and are not read. Papers report the "validation" split.

    Args:
        name: "mrpc", "stsb" or "rte".
        split: "train", "validation" or "test".
        limit: keep this many rows, drawn at random (with the label proportions for MRPC and RTE).
        seed: seed of the shuffle and of `limit`'s draw; rows always come shuffled.

    Returns:
        `((first_texts, second_texts), labels)`.

    Example:
        >>> pairs, scores = sentence_pairs("stsb", "validation", data_dir=data_dir)  # e.g. "shared/data": stsb/
        >>> (first, second) = pairs
        >>> len(first), scores.dtype
        (1500, dtype('float32'))
    """
    if name not in PAIR_DATASETS:
        raise ValueError(f"name must be one of {list(PAIR_DATASETS)}, got {name!r}.")
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {list(SPLIT_FILES)}, got {split!r}.")
    dataset = PAIR_DATASETS[name]
    stem = SPLIT_FILES[split]
    glue_file_names = () if split == "test" else (f"{stem}.tsv",)
    path = find_data_file(
        data_dir,
        file_names=(*glue_file_names, f"{stem}.csv", f"{stem}.csv.gz"),
        folder_names=dataset.folder_names,
        dataset=f"{dataset.title} {split}",
        how_to_get=dataset.how_to_get,
    )
    if path.name.endswith(".tsv"):
        (first, second), labels = _read_glue_tsv(path, dataset)
    else:
        (first, second), labels = read_csv(path, text_column="text_a", text_pair_column="text_b")

    if dataset.is_regression and labels.dtype.kind == "i":
        labels = labels.astype(np.float32)  # a file whose scores happen to be whole numbers
    if dataset.is_regression:
        valid = labels.dtype.kind == "f" and bool(np.all((labels >= 0) & (labels <= 5)))
    else:
        valid = labels.dtype.kind == "i" and bool(np.isin(labels, (0, 1)).all())
    if not valid:
        expected = "scores from 0 to 5" if dataset.is_regression else "0 or 1"
        raise ValueError(f"{path}: {dataset.title} labels must be {expected}, got values like {labels[:3].tolist()}.")
    order = choose_rows(labels, limit=limit, seed=seed, shuffle=True, stratify=not dataset.is_regression)
    return (take(first, order), take(second, order)), labels[order]


def _read_glue_tsv(path, dataset: PairDataset):
    """GLUE's TSV files are read without quote handling, as GLUE's own readers do (texts contain bare quotes)."""
    header, rows = read_table(path, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [column for column in dataset.glue_columns if column not in header]
    if missing:
        raise ValueError(f"{path} lacks GLUE's {dataset.title} columns {missing}; its columns are {header}.")
    first_index, second_index, label_index = (header.index(column) for column in dataset.glue_columns)
    first = [row[first_index] for row in rows]
    second = [row[second_index] for row in rows]
    raw_labels = [row[label_index] for row in rows]
    if dataset.glue_label_ids is None:
        return (first, second), parse_label_strings(raw_labels, source=str(path))
    unknown = sorted(set(raw_labels) - dataset.glue_label_ids.keys())
    if unknown:
        raise ValueError(f"{path}: unknown labels {unknown}; expected {list(dataset.glue_label_ids)}.")
    return (first, second), np.array([dataset.glue_label_ids[label] for label in raw_labels], dtype=np.int64)

