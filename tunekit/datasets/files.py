"""Reading labelled texts from your own CSV and JSON Lines files (or open text streams such as stdin)."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np

from tunekit.datasets._sampling import choose_rows, take

GZIP_MAGIC = b"\x1f\x8b"


def read_csv(
    path,
    text_column: str = "text",
    label_column: str | None = "label",
    text_pair_column: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
):
    """Texts and labels from a CSV file with a header row (gzip'd files are read transparently).

    `path` is a file path or an open text stream (`io.StringIO`; messages name it by its `name` attribute).
    `label_column=None` reads texts without labels (to predict): the labels returned are None. Labels become an int64 array when every label is an integer, float32 when every label is a number, and an
    array of strings otherwise. Rows keep the file order unless `seed` is given: then they are shuffled with it,
    and `limit` picks a random subset (stratified by label unless the labels are floats) instead of the first rows.

    Returns:
        `(texts, labels)`, or `((texts, text_pairs), labels)` when `text_pair_column` is given.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
        >>> _ = path.write_text('text,label\\n"Great, really.",1\\nDull.,0\\n')
        >>> read_csv(path)
        (['Great, really.', 'Dull.'], array([1, 0]))
        >>> read_csv(io.StringIO('text\\nNew review.\\n'), label_column=None)
        (['New review.'], None)
    """
    header, rows = read_table(path)
    columns = {name: index for index, name in enumerate(header)}

    def column(name: str) -> list[str]:
        if name not in columns:
            raise ValueError(f"{source_name(path)} has no column {name!r}; its columns are {header}.")
        return [row[columns[name]] for row in rows]

    texts = column(text_column)
    text_pairs = column(text_pair_column) if text_pair_column is not None else None
    labels = None if label_column is None else parse_label_strings(column(label_column), source=source_name(path))
    return select_examples(texts, text_pairs, labels, limit=limit, seed=seed)


def read_jsonl(
    path,
    text_column: str = "text",
    label_column: str | None = "label",
    text_pair_column: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
):
    """Texts and labels from a JSON Lines file: one JSON object per line (blank lines skipped, gzip transparent).

    Labels keep their JSON type: int64 array for integers (and booleans), float32 for numbers, strings otherwise.
    `path` (a file path or an open text stream), `label_column=None`, `limit` and `seed` work as in `read_csv`.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
        >>> _ = path.write_text('{"q": "Hi?", "a": "Hello.", "score": 4.5}\\n{"q": "Why?", "a": "No.", "score": 1}\\n')
        >>> (questions, answers), scores = read_jsonl(path, text_column="q", text_pair_column="a", label_column="score")
        >>> answers, scores
        (['Hello.', 'No.'], array([4.5, 1. ], dtype=float32))
    """
    name = source_name(path)
    records = []
    with open_text(path) as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name}, line {line_number}: not valid JSON ({error.msg}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{name}, line {line_number}: expected a JSON object, got {type(record).__name__}.")
            records.append((line_number, record))
    if not records:
        raise ValueError(f"{name} holds no records.")

    def field(key: str, *, text: bool) -> list:
        values = []
        for line_number, record in records:
            if key not in record:
                raise ValueError(f"{name}, line {line_number} has no field {key!r}; it has {sorted(record)}.")
            if text and not isinstance(record[key], str):
                raise ValueError(f"{name}, line {line_number}: field {key!r} must be a string, got {record[key]!r}.")
            values.append(record[key])
        return values

    texts = field(text_column, text=True)
    text_pairs = field(text_pair_column, text=True) if text_pair_column is not None else None
    labels = None if label_column is None else _label_array(field(label_column, text=False), source=name)
    return select_examples(texts, text_pairs, labels, limit=limit, seed=seed)


def select_examples(texts, text_pairs, labels, *, limit, seed):
    """Applies `limit`/`seed` as `read_csv` documents and packs the result (labels None: texts only)."""
    stratify = labels is not None and labels.dtype.kind != "f"
    order = choose_rows(texts if labels is None else labels, limit=limit, seed=seed, shuffle=seed is not None,
                        stratify=stratify)
    chosen_texts = take(texts, order)
    chosen_labels = None if labels is None else labels[order]
    if text_pairs is None:
        return chosen_texts, chosen_labels
    return (chosen_texts, take(text_pairs, order)), chosen_labels


def source_name(path) -> str:
    """How messages name what is read: the path, or an open stream's `name` (`"<stream>"` if it has none).

    Example:
        >>> stream = io.StringIO("text\\n")
        >>> stream.name = "stdin"
        >>> source_name(stream), source_name("reviews.csv")
        ('stdin', 'reviews.csv')
    """
    if isinstance(path, io.TextIOBase):
        return str(getattr(path, "name", "<stream>"))
    return str(path)


def open_text(path):
    """Opens a UTF-8 text file for reading, gunzipping it if it is gzip'd (a leading byte-order mark is dropped).

    An open text stream (`io.StringIO`, `sys.stdin`) is read from where it is, and left open.
    """
    if isinstance(path, io.TextIOBase):
        return contextlib.nullcontext(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
    if is_gzip:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_table(path, *, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a delimited text file (or open text stream); blank lines are skipped and every row must
    match the header."""
    name = source_name(path)
    with open_text(path) as lines:
        reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{name} is empty.")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{name}, line {reader.line_num}: {len(row)} fields but the header has {len(header)} ({header})."
                )
            rows.append(row)
    if not rows:
        raise ValueError(f"{name} has a header but no rows.")
    return header, rows


def parse_label_strings(values: list[str], *, source: str) -> np.ndarray:
    """int64 if every value is an integer, float32 if every value is a number, else the strings themselves."""
    stripped = [value.strip() for value in values]
    for row_number, value in enumerate(stripped, start=1):
        if not value:
            raise ValueError(f"{source}: data row {row_number} has an empty label.")
    for convert, dtype in ((int, np.int64), (float, np.float32)):
        try:
            return np.array([convert(value) for value in stripped], dtype=dtype)
        except ValueError:
            continue
    return np.array(stripped)


def _label_array(values: list, *, source: str) -> np.ndarray:
    if all(isinstance(value, (bool, int)) for value in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return np.array(values, dtype=np.float32)
    if all(isinstance(value, str) for value in values):
        return np.array(values)
    kinds = sorted({type(value).__name__ for value in values})
    raise ValueError(f"{source}: labels must be all integers, all numbers or all strings; found {kinds}.")

