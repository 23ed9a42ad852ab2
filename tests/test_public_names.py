"""The public contract: every dotted `tunekit.` path that the docs, the README and the library's own messages and
docstrings mention resolves; each subpackage exports its names; `import tunekit` stays light."""

import ast
import importlib
import pathlib
import re
import subprocess
import sys

import pytest

import tunekit

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOTTED = re.compile(r"\btunekit(?:\.[A-Za-z_]\w*)+")
FILE_SUFFIXES = (".json", ".md", ".py", ".yaml", ".yml", ".txt")  # tunekit.json (the marker file), tunekit.md


def _strings(path):
    """The string literals of a Python file that are text (docstrings, messages), with their line numbers.

    A string that is exactly one dotted name is a key, not a mention (logger names, ASGI scope keys).
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not DOTTED.fullmatch(node.value):
            yield node.lineno, node.value


def _logger_names():
    """Names given to `logging.getLogger("...")` in tunekit: they look like module paths but name loggers."""
    names = set()
    for path in (ROOT / "tunekit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def mentions():
    """`{dotted path: first place it is mentioned}` over docs/**/*.md, README.md and tunekit/**/*.py strings."""
    found = {}
    texts = [(path, line, text) for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
             for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)]
    for path in sorted((ROOT / "tunekit").rglob("*.py")):
        texts += [(path, line, text) for line, text in _strings(path)]
    loggers = _logger_names()
    for path, line, text in texts:
        for match in DOTTED.finditer(text):
            if not match.group().endswith(FILE_SUFFIXES) and match.group() not in loggers:
                found.setdefault(match.group(), f"{path.relative_to(ROOT)}:{line}")
    return found


def resolve(dotted):
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError as error:
            if not ".".join(parts[:split]).startswith(error.name or "\0"):
                raise  # a module that exists but imports something missing
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


MENTIONS = mentions()


def test_the_scan_finds_the_documented_names():
    assert {"tunekit.backbones.list_backbones", "tunekit.preprocessing.Preprocessor"} <= set(MENTIONS)


@pytest.mark.parametrize("dotted", sorted(MENTIONS))
def test_mentioned_path_resolves(dotted):
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{dotted} (mentioned in {MENTIONS[dotted]}) does not resolve: {error}")


def test_top_level_and_subpackage_exports_resolve():
    import tunekit.backbones
    import tunekit.inputs
    import tunekit.preprocessing
    import tunekit.training

    for package in (tunekit, tunekit.backbones, tunekit.preprocessing, tunekit.training, tunekit.heads,
                    tunekit.datasets, tunekit.inputs):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
        assert set(package.__all__) <= set(dir(package))
    assert tunekit.load_backbone is tunekit.backbones.load_backbone
    assert tunekit.Trainer is tunekit.training.Trainer
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        tunekit.nonexistent  # noqa: B018


def test_every_subpackage_is_an_attribute_of_tunekit():
    subpackages = sorted(path.parent.name for path in (ROOT / "tunekit").glob("*/__init__.py"))
    for name in subpackages:
        assert getattr(tunekit, name).__name__ == f"tunekit.{name}"
    assert "metrics" in dir(tunekit) or not (ROOT / "tunekit" / "metrics.py").exists()


def test_import_tunekit_does_not_load_tensorflow():
    code = "import sys, tunekit; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
