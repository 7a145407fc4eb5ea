"""A training run killed with SIGKILL mid-epoch resumes from its last backup
and ends as an uninterrupted run does: as many steps, the same weights."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import tiny_transformer
from keras_stageshow import Transformer
from keras_stageshow.training import StepBackup

pytestmark = pytest.mark.tf_only  # training runs (tf.data)

# On the CPU: the resumed run is compared bit for bit with an uninterrupted
# one, which a GPU's kernels need not repeat.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
EPOCHS = 3


def train_command(data_dir, out):
    return [
        sys.executable, "-m", "keras_stageshow", "train", "--data-dir", str(data_dir),
        "--max-examples", "600", "--epochs", str(EPOCHS), "--num-layers", "1",
        "--d-model", "32", "--num-heads", "2", "--d-ff", "64",
        "--vocabulary-size", "300", "--tokens-per-batch", "256",
        "--backup-every-steps", "4", "--dtype-policy", "float32",
        "--average-last", "0", "--quiet", "--out", str(out),
    ]


def history_column(out, column):
    with open(out / "history.csv") as f:
        return [row[column] for row in csv.DictReader(f)]


def test_sigkill_mid_epoch_then_resume_ends_as_an_uninterrupted_run(
    tmp_path, data_dir
):
    out = tmp_path / "run"
    state_file = out / "backup" / "state.json"
    log = open(tmp_path / "first.log", "w")  # a file: a pipe could fill and block
    process = subprocess.Popen(
        train_command(data_dir, out), env=ENV, stdout=log, stderr=subprocess.STDOUT,
    )
    killed_at = None
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = None
        # In the middle of the second epoch: its order is not the first's.
        if state and state["epoch"] == 1 and state["batches_done"] > 0:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at = state
            break
        time.sleep(0.05)
    if killed_at is None:
        process.kill()
    log.close()
    assert killed_at is not None, (
        "the run ended before it could be killed mid-epoch: "
        + (tmp_path / "first.log").read_text()[-2000:]
    )
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "training" and run["epochs_done"] == 1

    resumed = subprocess.run(
        train_command(data_dir, out), env=ENV, capture_output=True, text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["epochs_done"] == EPOCHS
    # The same number of optimizer steps as a run that was never killed.
    assert run["steps_done"] == EPOCHS * run["train_data"]["batches"]
    assert not (out / "backup").exists() and not (out / "lock").exists()
    assert (out / "history.csv").read_text().count("\n") == EPOCHS + 1

    # Bit for bit the run that was never killed: the rest of the killed
    # epoch and the epochs after it drew the same dropout masks.
    uninterrupted = tmp_path / "uninterrupted"
    whole = subprocess.run(
        train_command(data_dir, uninterrupted), env=ENV, capture_output=True,
        text=True, timeout=600,
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    # (The killed epoch's training loss differs: its mean restarted.)
    assert history_column(out, "val_loss") == history_column(uninterrupted, "val_loss")
    # And the best model on validation loss, weight for weight.
    resumed_model, whole_model = (
        keras.saving.load_model(
            folder / "model.keras", compile=False,
            custom_objects={"Transformer": Transformer},
        )
        for folder in (out, uninterrupted)
    )
    for a, b in zip(resumed_model.get_weights(), whole_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_backup_restores_weights_optimizer_and_position(tmp_path):
    model = tiny_transformer()
    model.compile(warmup_steps=10)
    source = np.random.default_rng(0).integers(4, 30, (64, 6)).astype("int32")
    data = ((source, source), source)
    backup = StepBackup(tmp_path / "backup", every_steps=3)
    model.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    state = backup.state()
    # No dropout here (tests/test_dropout.py has the generators' state).
    assert state.pop("random_state") == []
    assert state == {"epoch": 1, "batches_done": 0, "weights": "backup-1-0.weights.h5"}
    assert sorted(os.listdir(tmp_path / "backup")) == [
        "backup-1-0.weights.h5", "state.json",
    ]  # older backups deleted, nothing temporary left

    restored = tiny_transformer()
    restored.compile(warmup_steps=10)
    restored((source[:1], source[:1]))
    assert backup.restore(restored) == (1, 0)
    assert int(restored.optimizer.iterations.numpy()) == 8
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)

    # Mid-epoch backups record the batches done, counted from the offset.
    mid = StepBackup(tmp_path / "mid", every_steps=3, batch_offset=2)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            (mid.state() or {}).get("batches_done")
        )
    )
    model.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[mid, record])
    # Batches 3, 6 (the offset's 2 plus 1 and 4 here) are backed up.
    assert seen[:6] == [3, 3, 3, 6, 6, 6]
    state = mid.state()
    assert state.pop("random_state") == []
    assert state == {"epoch": 1, "batches_done": 0, "weights": "backup-1-0.weights.h5"}


def test_step_backup_with_a_damaged_state_has_a_clear_error(tmp_path):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "state.json").write_text(
        json.dumps({"epoch": 1, "batches_done": 3, "weights": "gone.weights.h5"})
    )
    model = tiny_transformer()
    model.compile()
    with pytest.raises(FileNotFoundError, match="damaged"):
        StepBackup(folder).restore(model)
    (folder / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        StepBackup(folder).restore(model)
    with pytest.raises(ValueError, match="every_steps"):
        StepBackup(folder, every_steps=0)
