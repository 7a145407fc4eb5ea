"""The RUN_DIR format (`run_dir.py`): recognising a run, reading run.json
with clear errors, writing it atomically, the one-process lock, and loading
the model with clear errors."""

import json
import os
import subprocess
import sys

import pytest

from keras_stageshow import run_dir
from keras_stageshow.run_dir import RunLock
from keras_stageshow.run_dir import is_run_dir
from keras_stageshow.run_dir import load_model
from keras_stageshow.run_dir import new_run
from keras_stageshow.run_dir import read_run
from keras_stageshow.run_dir import write_run


def test_a_run_dir_is_a_folder_with_run_json(tmp_path):
    assert not is_run_dir(tmp_path)
    assert not is_run_dir(tmp_path / "missing")
    (tmp_path / run_dir.RUN_FILE).mkdir()  # a folder of that name is not one
    assert not is_run_dir(tmp_path)
    other = tmp_path / "run"
    other.mkdir()
    (other / "run.json").write_text("{}")
    assert is_run_dir(other)


def test_read_run_has_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"RUN_DIR .*missing.* does not exist"):
        read_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a training run: it has no run.json"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="Run file .* is not valid JSON"):
        read_run(tmp_path)


def test_write_run_round_trips_and_leaves_no_temporary_file(tmp_path):
    run = new_run({"d_model": 16}, "tiny data")
    assert run == {
        "status": "training", "settings": {"d_model": 16}, "data": "tiny data",
        "epochs_done": 0, "train_seconds": 0.0, "best_val_loss": None,
        "best_epoch": None,
    }
    write_run(tmp_path, run)
    assert read_run(tmp_path) == run
    assert json.loads((tmp_path / "run.json").read_text()) == run
    run["epochs_done"] = 1
    write_run(tmp_path, run)
    assert read_run(tmp_path)["epochs_done"] == 1
    assert os.listdir(tmp_path) == ["run.json"]


def test_the_lock_holds_the_pid_and_is_removed(tmp_path):
    lock = tmp_path / run_dir.LOCK_FILE
    with RunLock(tmp_path):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()
    with pytest.raises(KeyError):
        with RunLock(tmp_path):
            raise KeyError("the lock goes even when training fails")
    assert not lock.exists()


def test_a_lock_of_a_live_process_is_refused(tmp_path):
    (tmp_path / "lock").write_text(str(os.getppid()))  # alive, and not us
    with pytest.raises(RuntimeError, match=rf"Another process \(pid {os.getppid()}\)"):
        with RunLock(tmp_path):
            pass
    assert (tmp_path / "lock").read_text() == str(os.getppid())


@pytest.mark.parametrize("content", ["dead", "", "not a pid"])
def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, content):
    if content == "dead":
        finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True, check=True)
        content = finished.stdout.strip()  # a process that has exited
    (tmp_path / "lock").write_text(content)
    with RunLock(tmp_path):
        assert (tmp_path / "lock").read_text() == str(os.getpid())
    assert not (tmp_path / "lock").exists()


def test_load_model_has_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "model.keras"))
    (tmp_path / "model.keras").write_bytes(b"half a model")
    with pytest.raises(ValueError, match="not a .keras archive"):
        load_model(str(tmp_path / "model.keras"))


def test_run_dir_imports_neither_keras_nor_the_rest_of_the_library():
    code = (
        "import sys; import keras_stageshow.run_dir; "
        "print(sorted(m for m in sys.modules if m.startswith(('keras', 'tensorflow'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert eval(loaded) == [
        "keras_stageshow", "keras_stageshow.files", "keras_stageshow.run_dir",
    ]
