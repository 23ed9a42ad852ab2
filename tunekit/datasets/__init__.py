"""Datasets as raw texts and labels, ready for `Trainer.fit(texts, labels)`.

IMDB ships as a sample (3,000 train / 1,000 test reviews) and reads the full official data from `data_dir` or a
download; the other datasets are read from local copies given by `data_dir`; `read_csv`, `read_jsonl` and
`read_conll` read your own files.

>>> import tunekit as tk
>>> texts, labels = tk.datasets.imdb("train", limit=100)
>>> len(texts), tk.datasets.IMDB_LABELS[int(labels[0])] in ("negative", "positive")
(100, True)
"""

from tunekit.datasets.conll import read_conll
from tunekit.datasets.files import read_csv, read_jsonl
from tunekit.datasets.imdb import IMDB_LABELS, imdb
from tunekit.datasets.pairs import sentence_pairs
from tunekit.datasets.sentiment import rt_polarity, sst2

__all__ = [
    "IMDB_LABELS",
    "imdb",
    "read_conll",
    "read_csv",
    "read_jsonl",
    "rt_polarity",
    "sentence_pairs",
    "sst2",
]
