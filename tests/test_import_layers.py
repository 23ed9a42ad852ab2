"""Imports run one way: every module of tunekit belongs to a layer of `LAYERS` (bottom up) and imports only
its own layer and the ones below it. Module-level and function-level (lazy) imports both count, and so do names
reached through the lazy `tunekit` facade (`import tunekit as tk; tk.load_model`), so a lazy import cannot hide an
upward dependency. A module goes to its longest matching entry; the root package `tunekit` itself (its
`__version__`) is at the bottom, and only matches exactly."""

import ast
import pathlib

import pytest

import tunekit

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tunekit"

LAYERS = [
    # Argument checks, files and formats on disk, texts and metrics in plain Python, dataset readers, and the model
    # inputs (tf.data pipelines) that everything above reads texts with.
    ("tunekit", "tunekit._lazy", "tunekit.arguments", "tunekit.files", "tunekit.formats", "tunekit.hub_handles",
     "tunekit.texts", "tunekit.augment", "tunekit.metrics", "tunekit.datasets", "tunekit.inputs"),
    ("tunekit.preprocessing", "tunekit.heads"),
    ("tunekit.backbones",),
    # The model, with its compiled predict path (`tunekit.model.predict_texts`, once `tunekit.inference`).
    ("tunekit.model",),
    ("tunekit.training", "tunekit.peft", "tunekit.distributed"),
    ("tunekit.saving", "tunekit.deploy"),
    ("tunekit.serving",),
    # Commands: `tunekit` (tunekit/cli.py, or the tunekit/cli/ package) and the multi-worker launcher.
    ("tunekit.cli", "tunekit.__main__", "tunekit.distributed.__main__"),
]

# The one upward import allowed, with why: `Trainer.save` / `Trainer.export` are the README's one-line way to write
# a trained model and stay public API; they call `tunekit.save_model` / `export_model`, and saving sits above
# training because `load_model` imports every layer's Keras classes (LoRA encoders, the learning-rate schedule).
ALLOWED_UPWARD = {("tunekit.training.trainer", "tunekit.saving")}


def layer_of(module):
    """The index in `LAYERS` of `module` (a dotted name), by its longest matching entry; None when unplaced."""
    best = None
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            matches = module == entry or (entry != "tunekit" and module.startswith(entry + "."))
            if matches and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    return None if best is None else best[0]


def module_name(path):
    """tunekit/deploy/artifact.py -> tunekit.deploy.artifact; tunekit/inputs/__init__.py -> tunekit.inputs."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted):
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _facade_target(name):
    """The module that `tunekit.<name>` comes from (`tunekit.Trainer` -> tunekit.training.trainer)."""
    if name in tunekit._EXPORTS:
        return tunekit._EXPORTS[name]
    return f"tunekit.{name}" if _is_module(f"tunekit.{name}") else "tunekit"


def imports_of(module, source, *, is_package=False):
    """`(imported module, line)` for every tunekit import in `source`, the text of the module named `module`."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found, facade_aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tunekit" or alias.name.startswith("tunekit."):
                    found.append((alias.name, node.lineno))
                    if alias.name == "tunekit":
                        facade_aliases.add(alias.asname or "tunekit")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: package.count(".") + 2 - node.level]
                base = ".".join(anchor + ([base] if base else []))
            if base == "tunekit":
                found += [(_facade_target(alias.name), node.lineno) for alias in node.names]
            elif base.startswith("tunekit."):
                found += [(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base, node.lineno)
                          for alias in node.names]
    for node in ast.walk(tree):  # tk.load_model after `import tunekit as tk` imports tunekit.saving
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in facade_aliases:
            if _facade_target(node.attr) != "tunekit":
                found.append((_facade_target(node.attr), node.lineno))
    return found


def tunekit_sources():
    """`[(module, file, source, is_package)]` for every file of tunekit (tunekit/cli.py and tunekit/cli/ may
    both exist while one becomes the other)."""
    return [(module_name(path), str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"),
             path.name == "__init__.py") for path in sorted(PACKAGE.rglob("*.py"))]


def upward_imports(sources):
    """`{(importer, imported): "file:line"}` for every import from a lower layer to a higher one."""
    upward = {}
    for module, where, source, is_package in sources:
        for imported, line in imports_of(module, source, is_package=is_package):
            if layer_of(imported) is not None and layer_of(imported) > layer_of(module):
                upward.setdefault((module, imported), f"{where}:{line}")
    return upward


def test_every_module_has_a_layer():
    unplaced = sorted({module for module, *_ in tunekit_sources() if layer_of(module) is None})
    assert not unplaced, f"Place these modules in LAYERS of {pathlib.Path(__file__).name}: {unplaced}"


def test_imports_run_one_way():
    upward = upward_imports(tunekit_sources())
    unexpected = {pair: where for pair, where in upward.items() if pair not in ALLOWED_UPWARD}
    assert not unexpected, "Imports from a lower layer up to a higher one (move the code down, or the caller up):\n" + \
        "\n".join(f"  {where}: {importer} -> {imported}" for (importer, imported), where in sorted(unexpected.items()))
    stale = ALLOWED_UPWARD - set(upward)
    assert not stale, f"ALLOWED_UPWARD names imports that no longer exist, remove them: {sorted(stale)}"


def test_at_most_one_upward_import_is_allowed():
    assert len(ALLOWED_UPWARD) <= 1


@pytest.mark.parametrize("source, expected", [
    ("from tunekit.training.trainer import Trainer\n", "tunekit.training.trainer"),
    ("def late():\n    from tunekit.saving import save_model\n", "tunekit.saving"),
    ("import tunekit as tk\n\ndef late(path):\n    return tk.load_model(path)\n", "tunekit.saving"),
    ("from tunekit import Trainer\n", "tunekit.training.trainer"),
    ("from tunekit import serving\n", "tunekit.serving"),
    ("from ..deploy import artifact\n", "tunekit.deploy.artifact"),
])
def test_the_scan_sees_upward_imports_of_every_form(source, expected):
    module = "tunekit.heads.imagined"  # a module of the second layer, given as source only
    assert expected in [imported for imported, _ in imports_of(module, source)]
    assert (module, expected) in upward_imports([(module, "tunekit/heads/imagined.py", source, False)])


def test_the_scan_sees_the_real_imports():
    """Guards the scan itself: known imports of each form are found, and the layers of cli/ and formats hold."""
    found = {}
    for module, _, source, is_package in tunekit_sources():
        found.setdefault(module, set()).update(imported for imported, _ in imports_of(module, source,
                                                                                     is_package=is_package))
    assert "tunekit.heads" in found["tunekit.model"]  # module level
    assert "tunekit.backbones.backbone" in found["tunekit.model"]  # inside attach_head
    assert "tunekit.inputs.text_batches" in found["tunekit.inputs.word_batches"]  # within a layer
    assert "tunekit.deploy.litert_runtime" in found["tunekit.deploy.tflite"]  # a sibling module
    assert layer_of("tunekit.cli.commands") == layer_of("tunekit.cli") == len(LAYERS) - 1
    assert layer_of("tunekit.formats") == layer_of("tunekit.files") == 0
