"""The data the `tunekit` command reads: `--train`/`--validation`/`--test`, `evaluate`'s and `export
--validation`'s labelled data, and `predict`'s input (a file or stdin), all read with `tunekit.datasets`' readers.

A data source is a file path, `NAME[:SPLIT]` of a named dataset, or a mapping (`{path: ..., text_column: ...}`,
`{dataset: imdb, split: test, limit: 500}`).

Example:

>>> source_mapping("imdb:test")
{'dataset': 'imdb', 'split': 'test'}
>>> file_format("reviews.csv.gz"), file_format("eng.train"), labelled_format("tags.txt")
('csv', 'conll', 'conll')
"""

import io
import os
import sys

from tunekit.cli import tasks
from tunekit.cli.errors import UsageError, user_errors
from tunekit.formats import TEXT_INPUT_NAMES

SPLITS = ("train", "validation", "test")
DATA_OPTIONS = ("path", "format", "text_column", "label_column", "text_pair_column", "limit", "seed", "column",
                "dataset")
FILE_FORMATS = ("csv", "jsonl", "conll", "text")
NAMED_DATASETS = ("imdb", "sst2", "rt_polarity", "mrpc", "stsb", "rte")
PAIR_DATASETS = ("mrpc", "stsb", "rte")  # tunekit.datasets.sentence_pairs(NAME, ...)
# Only IMDB ships (as a sample) with tunekit; the others are read from their downloaded files.
SHIPPED_DATASETS = ("imdb",)


def source_mapping(text):
    """`{"path": text}`, or `{"dataset": NAME, "split": SPLIT}` for `NAME[:SPLIT]` of a named dataset."""
    name, _, split = text.partition(":")
    if os.path.exists(text) or name not in NAMED_DATASETS:
        return {"path": text}
    return {"dataset": name, **({"split": split} if split else {})}


def option_defaults(args):
    """The column and `--data-dir` options given on the command line, as defaults for data sources."""
    return {key: getattr(args, key) for key in ("text_column", "label_column", "text_pair_column", "data_dir")
            if getattr(args, key, None) is not None}


def data_spec(value, defaults):
    """A data source as a dict: a path or `NAME[:SPLIT]` string, or a mapping, merged over `defaults`.

    >>> data_spec("imdb:test", {"data_dir": "glue"})
    {'dataset': 'imdb', 'split': 'test'}
    """
    if isinstance(value, str):
        spec = source_mapping(value)
    elif isinstance(value, dict):
        spec = dict(value)
    else:
        raise UsageError(f"a data source must be a file path, DATASET:SPLIT or a mapping, got {value!r}.")
    if "dataset" in spec:
        shipped = spec["dataset"] in SHIPPED_DATASETS
        if "data_dir" in defaults and "data_dir" not in spec and not shipped:
            spec["data_dir"] = defaults["data_dir"]
        if spec["dataset"] in NAMED_DATASETS and not shipped and "data_dir" not in spec:
            raise UsageError(
                f"the dataset {spec['dataset']!r} is read from its downloaded files: pass --data-dir DIR, the folder "
                "holding them (GLUE's train.tsv / dev.tsv, or the files named in tunekit.datasets), or "
                "data.data_dir in the config. Only imdb needs no --data-dir (a sample ships with tunekit)."
            )
        return spec
    if "path" not in spec:
        raise UsageError(f"data source {value!r} needs path: FILE or dataset: NAME ({', '.join(NAMED_DATASETS)}).")
    unknown = sorted(set(spec) - set(DATA_OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown data option(s) {', '.join(unknown)}; a file source takes: {', '.join(DATA_OPTIONS)}."
        )
    for key in ("text_column", "label_column", "text_pair_column"):
        if key in defaults and key not in spec:
            spec[key] = defaults[key]
    if not os.path.isfile(spec["path"]):
        raise UsageError(f"data file {spec['path']!r} does not exist.")
    return spec


def file_format(path, given=None):
    """`csv`, `jsonl`, `conll` or `text` from `given` or the file name (gzip suffix ignored)."""
    if given is not None:
        if given not in FILE_FORMATS:
            raise UsageError(f"unknown data format {given!r}; choose one of {', '.join(FILE_FORMATS)}.")
        return given
    name = os.path.basename(path).lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    return "conll"


def labelled_format(path, given=None):
    """The format of a labelled file: as `file_format`, but a `.txt` file is CoNLL (plain lines have no labels)."""
    fmt = file_format(path, given)
    return "conll" if fmt == "text" else fmt


def read_labelled(spec, *, task=None):
    """`(x, labels, label_names)` from a data spec; `label_names` is known for named datasets (IMDB) only.

    For `task="multilabel"`, a text's labels are one string with the names separated by `|` (`"sports|tech"`).
    """
    from tunekit import datasets

    spec = dict(spec)
    if "dataset" in spec:
        name = spec.pop("dataset")
        if name not in NAMED_DATASETS:
            raise UsageError(f"unknown dataset {name!r}; named datasets: {', '.join(NAMED_DATASETS)}.")
        with user_errors():
            if name in PAIR_DATASETS:
                x, y = datasets.sentence_pairs(name, **spec)
            else:
                x, y = getattr(datasets, name)(**spec)
        return x, y, list(datasets.IMDB_LABELS) if name == "imdb" else None
    path = spec.pop("path")
    fmt = labelled_format(path, spec.pop("format", None))
    with user_errors():
        if tasks.reads_conll(task) or fmt == "conll":
            if fmt != "conll":
                raise UsageError(f"{task} reads CoNLL files (one word and tag per line); {path} is {fmt}.")
            return (*datasets.read_conll(path, column=spec.pop("column", -1)), None)
        spec.pop("column", None)
        reader = datasets.read_csv if fmt == "csv" else datasets.read_jsonl
        x, y = reader(path, **spec)
    return x, tasks.labels_from_data(task, y), None


def read_stdin():
    """stdin as a text stream named `stdin`, refused with the byte and line if it is not UTF-8."""
    data = sys.stdin.buffer.read()
    try:
        stream = io.StringIO(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UsageError(
            f"stdin is not valid UTF-8: byte {data[error.start]:#04x} on line {line}. Convert it first, e.g. "
            "iconv -f latin1 -t utf-8 input.txt | tunekit predict MODEL") from None
    stream.name = "stdin"
    return stream


def read_unlabelled(source, args, task):
    """`(records, x)` of `predict`'s input `source` (a file, or `-` for stdin): the echo fields of every input
    (`text`, `text_pair` or `words`) and the model's input. `args` gives `format`, `text_column` and
    `text_pair_column`; `task`: the model's task, which says whether it reads texts or words."""
    from tunekit import datasets
    from tunekit.datasets.files import open_text
    from tunekit.inputs import input_kind

    kind = input_kind(task)
    fmt = (args.format or "text") if source == "-" else file_format(source, args.format)
    if fmt == "conll" and not kind.takes_words:
        raise UsageError(f"{source} is read as CoNLL (one word per line), which only token classification takes; "
                         "pass --format text, csv or jsonl.")
    if fmt == "text" and args.text_pair_column:
        raise UsageError("--text-pair-column needs CSV or JSONL input.")
    if source != "-" and not os.path.isfile(source):
        raise UsageError(f"input file {source!r} does not exist.")
    stream = read_stdin() if source == "-" else source
    with user_errors():
        if fmt == "conll":
            words, _ = datasets.read_conll(stream)
            return [{"words": sentence} for sentence in words], words
        if fmt == "text":
            with open_text(stream) as file:
                texts, pairs = [line for line in file.read().splitlines() if line.strip()], None
        else:
            reader = datasets.read_csv if fmt == "csv" else datasets.read_jsonl
            x, _ = reader(stream, text_column=args.text_column, label_column=None,
                          text_pair_column=args.text_pair_column)
            texts, pairs = x if isinstance(x, tuple) else (x, None)
    if not texts:
        raise UsageError(f"{source}: no texts to predict.")
    if pairs is None:
        return kind.from_texts(texts)
    return [dict(zip(TEXT_INPUT_NAMES, pair)) for pair in zip(texts, pairs)], (texts, pairs)
