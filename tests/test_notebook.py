"""examples/imdb_sentiment.ipynb runs top to bottom in a Jupyter kernel (nbclient), shrunk by
TUNEKIT_NOTEBOOK_SMALL=1 to 64 reviews at 64 tokens, and shows the training curve and the held-out accuracy."""

import base64
import pathlib
import re

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "examples" / "imdb_sentiment.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells(notebook))


def test_notebook_trains_and_shows_the_curve_and_the_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEKIT_NOTEBOOK_SMALL", "1")  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in code_cells(notebook) for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [base64.b64decode(output.data["image/png"]) for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1 and images[0].startswith(PNG_SIGNATURE) and len(images[0]) > 10_000  # a drawn figure
    assert (tmp_path / "imdb_curves.png").read_bytes() == images[0]
    text = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in outputs)
    assert "64 training reviews, 32 held-out reviews" in text  # the small run, not the full one
    accuracy = re.search(r"held-out accuracy (\d\.\d{3}) \(precision", text)
    assert accuracy and 0.0 <= float(accuracy.group(1)) <= 1.0
    assert re.search(r"\[('negative'|'positive'), ('negative'|'positive')\]", text)  # predict_labels of two reviews
