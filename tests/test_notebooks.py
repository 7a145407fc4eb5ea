"""The notebooks run top to bottom (quick mode: tiny sizes, the generated
captions in Multi30k's layout)
and are committed clean, each with its Colab badge and install cell."""

import os
import pathlib
import subprocess
import sys

import nbformat
import pytest

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


# Executes one notebook (argv: the notebook, the folder it runs in, where to
# write it executed); a failing cell exits non-zero with its error.
EXECUTE = r"""
import sys
import nbformat
from nbclient import NotebookClient

source, workdir, executed = sys.argv[1:]
notebook = nbformat.read(source, as_version=4)
client = NotebookClient(
    notebook, timeout=900, kernel_name="python3",
    resources={"metadata": {"path": workdir}},
)
try:
    client.execute()  # raises CellExecutionError on the first failing cell
finally:
    nbformat.write(notebook, executed)
"""


@pytest.fixture(scope="module")
def executions(request, tmp_path_factory, data_dir):
    """The notebooks this session runs, started together: each in a process
    and a folder of its own, as each Colab notebook gets its own runtime (03
    trains the small run it exports); side by side, the kernels keep both
    cores busy. Maps a name to `(process, folder, executed notebook path)`."""
    wanted = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.originalname == "test_notebook_runs_top_to_bottom"
    }
    env = {
        **os.environ,
        "STAGESHOW_QUICK": "1",
        "STAGESHOW_MULTI30K": os.path.abspath(data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "agg",
    }
    started = {}
    try:
        for name in NAMES:
            if name not in wanted:
                continue
            workdir = tmp_path_factory.mktemp(name.split("_")[0])
            executed = workdir.parent / f"{name}.executed"
            process = subprocess.Popen(
                [sys.executable, "-c", EXECUTE, str(NOTEBOOKS / name), str(workdir),
                 str(executed)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            started[name] = (process, workdir, executed)
        yield started
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.tf_only  # tf.data, the tokenizers, the SavedModel export
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, executions):
    process, workdir, executed = executions[name]
    log, _ = process.communicate(timeout=1800)
    assert process.returncode == 0, log[-5000:]
    notebook = nbformat.read(executed, as_version=4)
    text = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "quick mode: True" in text
    if name == "02_translate_multi30k.ipynb":
        assert "sacreBLEU" in text
        assert "the model is the " in text  # the averaging cell chose
        assert (workdir / "attention_multi30k.png").stat().st_size > 10_000
        assert (workdir / "runs" / "multi30k" / "model.keras").exists()
    if name == "01_quickstart.ipynb":
        assert (workdir / "attention_quickstart.png").stat().st_size > 10_000
    if name == "03_export_for_tf_serving.ipynb":
        assert "keras_stageshow imported: False" in text
        assert '"predictions"' in text
        assert (workdir / "serving" / "translator" / "1" / "saved_model.pb").exists()
