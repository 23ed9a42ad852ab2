"""Builds the IMDB samples shipped in `tunekit/datasets/data/` (what `tunekit.datasets.imdb()` reads by default).

    python -m tunekit.datasets.make_samples --source /work/shared/data

Source: the official IMDB v1.0 splits (Maas et al. 2011, `aclImdb_v1.tar.gz`) as CSV files
`<source>/imdb/train.csv.gz` and `<source>/imdb/test.csv.gz` (header `text,label`, 25,000 rows each, review texts
byte for byte with their `<br />` tags; negative rows first). The copies used for the shipped files had the sha256
    train.csv.gz 88f1be071c27b7e86720fe72a76422d3a13d588aa638ac6d80b664c1a5a8a758
    test.csv.gz  2118d1a372e34228def776adf11a81c88ffb924db427cb0f2e1eb0e9dca9f611

Rule: a review text is eligible if it occurs exactly once in its split and not at all in the other split (this drops
the 123 texts found in both train and test, and the duplicated reviews within each split). From the eligible rows,
`numpy.random.default_rng(SAMPLE_SEED)` draws, in this order, 1,500 negative and 1,500 positive train reviews, then 500
negative and 500 positive test reviews; each sample is written in random order (same generator). Output: gzip'd
UTF-8 CSV, header `text,label`, `\\n` line ends, texts unchanged, gzip header without name or time, so the same
source always gives the same bytes. Files are written to a temporary name and then renamed into place.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from tunekit.datasets.imdb import SAMPLE_FILE_NAME

SAMPLE_SEED = 2011
REVIEWS_PER_CLASS = {"train": 1500, "test": 500}
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "data"


def read_split(path: Path) -> list[tuple[str, int]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as lines:
        reader = csv.reader(lines)
        if next(reader) != ["text", "label"]:
            raise ValueError(f"{path} must have the header text,label.")
        return [(text, int(label)) for text, label in reader]


def draw_samples(splits: dict[str, list[tuple[str, int]]], seed: int) -> dict[str, list[tuple[str, int]]]:
    """The samples of every split in REVIEWS_PER_CLASS, drawn as the module docstring describes."""
    counts = {split: Counter(text for text, _ in rows) for split, rows in splits.items()}
    rng = np.random.default_rng(seed)
    samples = {}
    for split, per_class in REVIEWS_PER_CLASS.items():
        others = [counts[other] for other in counts if other != split]
        eligible = [
            (text, label) for text, label in splits[split]
            if counts[split][text] == 1 and not any(text in other for other in others)
        ]
        chosen = []
        for label in (0, 1):
            candidates = [row for row in eligible if row[1] == label]
            chosen += [candidates[i] for i in rng.choice(len(candidates), size=per_class, replace=False)]
        samples[split] = [chosen[i] for i in rng.permutation(len(chosen))]
    return samples


def write_sample(rows: list[tuple[str, int]], path: Path) -> None:
    """Writes rows as gzip'd CSV, reproducibly and atomically (temporary file in the same folder, then rename)."""
    file_descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(file_descriptor, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as compressed:
                with io.TextIOWrapper(compressed, encoding="utf-8", newline="") as text:
                    writer = csv.writer(text, lineterminator="\n")
                    writer.writerow(["text", "label"])
                    writer.writerows(rows)
        os.chmod(temporary_name, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True,
                        help="folder holding imdb/train.csv.gz and imdb/test.csv.gz (or the imdb folder itself)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="where to write the samples")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    args = parser.parse_args(argv)

    imdb_dir = args.source / "imdb" if (args.source / "imdb").is_dir() else args.source
    splits = {}
    for split in REVIEWS_PER_CLASS:
        path = imdb_dir / f"{split}.csv.gz"
        print(f"source {path} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
        splits[split] = read_split(path)
    args.output.mkdir(parents=True, exist_ok=True)
    for split, rows in draw_samples(splits, args.seed).items():
        path = args.output / SAMPLE_FILE_NAME.format(split=split)
        write_sample(rows, path)
        positives = sum(label for _, label in rows)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"wrote {path}: {len(rows)} rows ({len(rows) - positives} negative, {positives} positive), "
              f"{path.stat().st_size:,} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
