"""Reading token-tagged sentences in the CoNLL column format (CoNLL-2003 NER and the like)."""

from __future__ import annotations

from tunekit.datasets.files import open_text, source_name

DOCUMENT_SEPARATOR = "-DOCSTART-"


def read_conll(path, *, column: int = -1) -> tuple[list[list[str]], list[list[str]]]:
    """Words and tags of a CoNLL column file: one token per line, whitespace-separated columns.

    The word is the first column and the tag is column `column` (the last one by default: the NER tag of
    CoNLL-2003's `WORD POS CHUNK NER` lines; `column=2` gives the chunk tags). Blank lines end sentences;
    `-DOCSTART-` lines mark documents and are dropped. Gzip'd files are read transparently. Tags are returned
    as written: CoNLL-2003's `eng.*` files use IOB1, most other copies IOB2
    (`tunekit.metrics.entity_metrics` scores either).

    `path` may also be an open text stream (`io.StringIO`). A file of words alone (one column) reads with the
    default `column`: each word is its own tag, which a caller that only needs the words ignores.

    CoNLL-2003 itself is not shipped with tunekit: its Reuters text may not be redistributed.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.conll"
        >>> _ = path.write_text("-DOCSTART- -X- -X- O\\n\\nAda NNP B-NP B-PER\\nsings VBZ B-VP O\\n\\nHi UH O O\\n")
        >>> read_conll(path)
        ([['Ada', 'sings'], ['Hi']], [['B-PER', 'O'], ['O']])
    """
    name = source_name(path)
    sentences_words: list[list[str]] = []
    sentences_tags: list[list[str]] = []
    words: list[str] = []
    tags: list[str] = []
    with open_text(path) as lines:
        for line_number, line in enumerate(lines, start=1):
            fields = line.split()
            if fields and fields[0] != DOCUMENT_SEPARATOR:
                try:
                    tag = fields[column]
                except IndexError:
                    raise ValueError(
                        f"{name}, line {line_number}: {len(fields)} columns, so there is no column {column}."
                    ) from None
                words.append(fields[0])
                tags.append(tag)
            elif words:
                sentences_words.append(words)
                sentences_tags.append(tags)
                words, tags = [], []
    if words:
        sentences_words.append(words)
        sentences_tags.append(tags)
    if not sentences_words:
        raise ValueError(f"{name} holds no sentences.")
    return sentences_words, sentences_tags
