"""The notebooks run top to bottom (quick mode: tiny sizes, local Multi30k)
and are committed clean, each with its Colab badge and install cell."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).parent.parent / "notebooks"
NAMES = [
    "01_quickstart.ipynb",
    "02_translate_multi30k.ipynb",
    "03_export_for_tf_serving.ipynb",
]


def test_the_three_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean_with_badge_and_install(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    first = notebook.cells[0].source
    assert "colab.research.google.com/github/" in first
    assert f"/blob/main/notebooks/{name})" in first
    assert "google.colab" in code[0].source and "pip" in code[0].source
    assert "list_physical_devices(\"GPU\")" in code[1].source
    assert "mixed_float16" in code[1].source and "JIT_COMPILE" in code[1].source


@pytest.mark.tf_only  # tf.data, the tokenizers, the SavedModel export
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, data_dir, monkeypatch):
    # Each in a folder of its own, as each Colab notebook gets its own
    # runtime: 03 trains the small run it exports.
    workdir = tmp_path
    monkeypatch.setenv("STAGESHOW_QUICK", "1")
    monkeypatch.setenv("STAGESHOW_MULTI30K", os.path.abspath(data_dir))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "agg")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "quick mode: True" in text
    if name == "02_translate_multi30k.ipynb":
        assert "sacreBLEU" in text
        assert (workdir / "attention_multi30k.png").stat().st_size > 10_000
        assert (workdir / "runs" / "multi30k" / "model.keras").exists()
    if name == "01_quickstart.ipynb":
        assert (workdir / "attention_quickstart.png").stat().st_size > 10_000
    if name == "03_export_for_tf_serving.ipynb":
        assert "keras_stageshow imported: False" in text
        assert '"predictions"' in text
        assert (workdir / "serving" / "translator" / "1" / "saved_model.pb").exists()
