"""Griffe extension of the docs build: docstring examples (`>>>` blocks) render as Python console code.

Docstrings write examples as doctest blocks that the tests run (tests/test_docs.py). In Markdown, a bare
`>>>` line is a nested quote and `[1, 2]` a link; this fences each block as `pycon` and drops `# doctest:`
flags, so the API reference shows them as code.
"""

import re

import griffe

_DOCTEST_FLAGS = re.compile(r"\s*#\s*doctest:.*$")


def fence_doctests(text):
    """`text` with each `>>>` block (up to the next blank line) inside a ```pycon fence."""
    lines = text.split("\n")
    fenced = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if not stripped.startswith(">>>"):
            fenced.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(stripped)]
        fenced.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip() and lines[index].startswith(indent):
            fenced.append(indent + _DOCTEST_FLAGS.sub("", lines[index][len(indent):]))
            index += 1
        fenced.append(f"{indent}```")
    return "\n".join(fenced)


class DoctestFences(griffe.Extension):
    """Fences the doctest blocks of every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
