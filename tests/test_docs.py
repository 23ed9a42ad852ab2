"""The documentation: the mkdocs site builds with --strict (every page in the nav, no broken link, every API
reference docstring parses), and the `>>>` examples in tunekit's docstrings run and print what they show."""

import doctest
import importlib
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import tunekit

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(tunekit.__path__, "tunekit.")
    if not name.endswith("__main__")  # running those starts the command
)


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason='the docs build needs pip install "tunekit[docs]"')
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert process.returncode == 0, process.stderr[-5000:]
    assert "Formatting signatures requires" not in process.stderr  # the docs extra brings ruff for mkdocstrings
    api_page = (tmp_path / "site" / "api" / "tunekit" / "index.html").read_text(encoding="utf-8")
    headings = [re.sub(r"<[^>]+>|&para;", "", heading).strip()
                for heading in re.findall(r'<h2 id="[^"]*" class="doc doc-heading">(.*?)</h2>', api_page, re.S)]
    assert {"tk.load_backbone", "tk.attach_head", "tk.Trainer", "tk.load_model"} <= {h.split()[0] for h in headings}
    for page in (ROOT / "docs").glob("*.md"):
        assert (tmp_path / "site" / ("" if page.stem == "index" else page.stem) / "index.html").is_file(), page.name


@pytest.fixture(scope="module")
def example_globals(hub_models, model_garden, tmp_path_factory):
    """What docstring examples may use without defining it: `tk`, `tf`, `np`, and a tiny `backbone`, `model`
    (classification, labels "neg"/"pos"), `texts` and `labels` (the examples' stand-ins for a real encoder and data),
    `encoder_dir` and `preprocessor_dir`, a TF Hub BERT encoder and its preprocessor exported by TF Model Garden (the
    encoder loads as a native encoder),
    `artifact_dir`, a LiteRT int8 artifact (`tunekit.deploy.export_tflite`) of an untrained "neg"/"pos" classifier
    on that encoder, and `data_dir`, the folder of the shared public datasets, where conftest.py's `shared_data`
    looks (the dataset readers' examples read sst2/, rt_polarity/ and stsb/ in it; not checked here, so without
    the data only those examples fail)."""
    import numpy as np
    import tensorflow as tf
    from sample_texts import sentiment_texts

    from tunekit.deploy import export_tflite

    texts, labels = sentiment_texts(8)
    backbone = tunekit.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
    model = tunekit.attach_head(backbone, "classification", labels=["neg", "pos"], seed=0)
    native = tunekit.attach_head(tunekit.load_backbone(model_garden["encoder"], seq_length=16), "classification",
                                 labels=["neg", "pos"], seed=0)
    artifact_dir = export_tflite(native, tmp_path_factory.mktemp("artifact") / "imdb_int8")
    return {"tk": tunekit, "tf": tf, "np": np, "backbone": backbone, "model": model, "texts": texts,
            "labels": labels, "encoder_dir": model_garden["encoder"], "preprocessor_dir": model_garden["preprocessor"],
            "artifact_dir": artifact_dir,
            "data_dir": os.environ.get("TUNEKIT_SHARED_DATA") or str(ROOT.parent / "shared" / "data")}


@pytest.mark.parametrize("name", MODULES + ["tunekit"])
def test_docstring_examples_run(name, tmp_path, monkeypatch, example_globals):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs=dict(example_globals), verbose=False,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
