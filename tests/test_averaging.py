"""Checkpoint averaging: the exact element-wise mean of one architecture's
checkpoints, and `stageshow train --average-last N`, which keeps the last
epochs through kills and resumes and keeps the better of the average and
the best single epoch."""

import json
import os

import keras
import numpy as np
import pytest

from conftest import tiny_transformer
import keras_stageshow as ks
from keras_stageshow.cli import main as stageshow
from keras_stageshow.datasets.synthetic import stage_language_pairs
from keras_stageshow.training import LastEpochCheckpoints
from keras_stageshow.training import average_checkpoints
from keras_stageshow.training import run as run_module
from keras_stageshow.training.run import train_translation_run

IDS = np.random.default_rng(0).integers(4, 30, (16, 6)).astype("int32")


def saved_model(path, seed, **overrides):
    """A tiny built, compiled Transformer with weights drawn from `seed`,
    saved at `path`; returns its weights."""
    keras.utils.set_random_seed(seed)
    model = tiny_transformer(**overrides)
    model.compile(warmup_steps=10)
    model((IDS, IDS))
    model.optimizer.build(model.trainable_variables)  # saved as a run saves it
    model.save(path)
    return model.get_weights()


def test_average_of_identical_checkpoints_is_identical(tmp_path):
    weights = saved_model(tmp_path / "a.keras", seed=1)
    for paths in ([tmp_path / "a.keras"], [tmp_path / "a.keras"] * 3):
        averaged = average_checkpoints(paths)
        assert isinstance(averaged, ks.Transformer)
        for expected, actual in zip(weights, averaged.get_weights()):
            np.testing.assert_array_equal(actual, expected)


def test_average_of_two_checkpoints_is_their_exact_mean(tmp_path):
    first = saved_model(tmp_path / "a.keras", seed=1)
    second = saved_model(tmp_path / "b.keras", seed=2)  # named transformer_1
    averaged = average_checkpoints([tmp_path / "a.keras", str(tmp_path / "b.keras")])
    assert len(averaged.get_weights()) == len(first)
    for a, b, actual in zip(first, second, averaged.get_weights()):
        assert actual.dtype == a.dtype
        expected = (a.astype("float64") + b.astype("float64")) / 2
        np.testing.assert_allclose(actual, expected, rtol=1e-7, atol=0)
    assert not np.array_equal(first[0], second[0])
    # The averaged model runs, compiled as the checkpoints were.
    assert averaged.evaluate((IDS, IDS), IDS, verbose=0, return_dict=True)["loss"] > 0


def test_checkpoints_of_another_architecture_are_refused(tmp_path):
    saved_model(tmp_path / "a.keras", seed=1)
    saved_model(tmp_path / "wide.keras", seed=1, d_model=32)
    with pytest.raises(ValueError, match=r"wide\.keras.*another architecture.*d_model"):
        average_checkpoints([tmp_path / "a.keras", tmp_path / "wide.keras"])
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dense.save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match=r"dense\.keras.*is a Sequential"):
        average_checkpoints([tmp_path / "a.keras", tmp_path / "dense.keras"])


def test_bad_paths_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="`paths` is empty"):
        average_checkpoints([])
    with pytest.raises(FileNotFoundError, match=r"`paths\[0\]`.*missing\.keras"):
        average_checkpoints([tmp_path / "missing.keras"])
    with pytest.raises(TypeError, match="list of .keras files"):
        average_checkpoints(str(tmp_path / "a.keras"))
    with pytest.raises(ValueError, match="`keep` must be an int >= 1"):
        LastEpochCheckpoints(tmp_path, keep=0)
    with pytest.raises(ValueError, match="`average_last` must be an int >= 0"):
        train_translation_run(tmp_path / "run", ([], []), ([], []), average_last=-1)


def test_cli_rejects_a_negative_average_last(tmp_path, capsys):
    with pytest.raises(SystemExit):
        stageshow(["train", "--average-last", "-2", "--out", str(tmp_path)])
    error = capsys.readouterr().err
    assert "--average-last" in error and "int >= 0" in error


def check_choice(out):
    """run.json's averaging record matches the checkpoints kept and the
    model the run kept."""
    run = json.loads((out / "run.json").read_text())
    record = run["averaging"]
    assert run["status"] == "complete"
    epochs = {
        "average": record["epochs"],
        "average_to_best": record["average_to_best_epochs"],
    }
    kept = sorted(os.listdir(out / "epochs"))
    assert kept == [f"epoch-{n:03d}.keras" for n in sorted(set(sum(epochs.values(), [])))]
    best = run["best_epoch"]
    assert epochs["average_to_best"] == list(range(max(1, best - 1), best + 1))
    assert record["best_single_val_loss"] == run["best_val_loss"]
    losses = {
        name: record[f"{name}_val_loss"]
        for name in ("best_single", "average", "average_to_best")
        if record[f"{name}_val_loss"] is not None
    }
    assert record["chosen"] == min(losses, key=losses.get)
    if record["chosen"] != "best_single":
        paths = [out / "epochs" / f"epoch-{n:03d}.keras" for n in epochs[record["chosen"]]]
        expected = average_checkpoints(paths)
        kept_model = ks.Translator.load(out).model
        for a, b in zip(expected.get_weights(), kept_model.get_weights()):
            np.testing.assert_array_equal(a, b)
    return run


def test_checkpoints_kept_are_the_last_and_those_ending_at_the_best(tmp_path):
    model = tiny_transformer()
    model((IDS, IDS))
    checkpoints = LastEpochCheckpoints(tmp_path / "epochs", keep=2)
    checkpoints.set_model(model)
    # Validation loss falls to epoch 3, then rises (the run overfits).
    for epoch, val_loss in enumerate([3.0, 2.0, 1.0, 1.5, 2.5, 3.5]):
        checkpoints.on_epoch_end(epoch, {"loss": 0.1, "val_loss": val_loss})
    assert sorted(os.listdir(tmp_path / "epochs")) == [
        "epoch-002.keras", "epoch-003.keras", "epoch-005.keras", "epoch-006.keras",
    ]
    assert checkpoints.epochs() == [5, 6]
    assert checkpoints.best_epochs() == [2, 3]
    assert checkpoints.best_paths() == [
        str(tmp_path / "epochs" / "epoch-002.keras"),
        str(tmp_path / "epochs" / "epoch-003.keras"),
    ]
    # A new process resuming the run knows its best epoch from `best`.
    resumed = LastEpochCheckpoints(tmp_path / "epochs", keep=2, best=(3, 1.0))
    resumed.set_model(model)
    resumed.on_epoch_end(6, {"val_loss": 4.0})
    assert resumed.epochs() == [6, 7] and resumed.best_epochs() == [2, 3]
    # An epoch that beats it moves the window, and the old one goes.
    resumed.on_epoch_end(7, {"val_loss": 0.5})
    assert sorted(os.listdir(tmp_path / "epochs")) == [
        "epoch-007.keras", "epoch-008.keras",
    ]
    assert resumed.best_epochs() == [7, 8]
    with pytest.raises(ValueError, match="`best` must be None or"):
        LastEpochCheckpoints(tmp_path, keep=2, best=(0, 1.0))


def test_averaged_run_loads_translates_and_exports(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    code = stageshow([
        "train", "--data-dir", data_dir, "--max-examples", "300", "--epochs", "3",
        "--num-layers", "1", "--d-model", "32", "--num-heads", "2", "--d-ff", "64",
        "--vocabulary-size", "300", "--tokens-per-batch", "512",
        "--average-last", "2", "--quiet", "--out", str(out),
    ])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    summary = json.loads(printed.out.strip().splitlines()[-1])
    assert summary["averaging"]["epochs"] == [2, 3]
    run = check_choice(out)
    assert run["settings"]["average_last"] == 2 and run["epochs_done"] == 3

    translator = ks.Translator.load(out)
    assert isinstance(translator.translate(["Ein Hund läuft."])[0], str)
    version = ks.export_for_serving(out, tmp_path / "serving", batch_size=4)
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))


class Killed(Exception):
    """Stands for SIGKILL: the process stops where it is."""


class KillInEpoch(keras.callbacks.Callback):
    """Stops training as a kill would, after batch `batch` of epoch `epoch`
    (both 1-based)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch + 1 == self.batch:
            raise Killed("killed mid-epoch")


def test_interrupted_run_keeps_its_checkpoints_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train = stage_language_pairs(300, seed=0)
    val = stage_language_pairs(60, seed=1)
    settings = dict(
        num_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=40,
        vocabulary_size=100, tokens_per_batch=512, warmup_steps=10, epochs=3,
        backup_every_steps=2, average_last=2, verbose=0,
    )
    # Killed in the middle of the third epoch: the first two are kept.
    with pytest.raises(Killed):
        train_translation_run(out, train, val, callbacks=[KillInEpoch(3, 3)], **settings)
    batches = json.loads((out / "run.json").read_text())["train_data"]["batches"]
    assert batches > 3
    assert sorted(os.listdir(out / "epochs")) == ["epoch-001.keras", "epoch-002.keras"]
    # A temporary file that a kill during a save would leave behind.
    (out / "epochs" / ".epoch-003.keras.tmp.x.keras").write_bytes(b"PK")

    run = train_translation_run(out, train, val, **settings)
    assert run["steps_done"] == 3 * batches  # as many as if never killed
    assert run["averaging"]["epochs"] == [2, 3]
    check_choice(out)
    assert not (out / "backup").exists()
    assert not (out / "epochs" / ".epoch-003.keras.tmp.x.keras").exists()

    # The same run killed after its last epoch, before choosing, with a
    # best single epoch that the average beats (its loss made huge here),
    # and killed again while choosing: after the average was saved as the
    # run's model, before run.json recorded it.
    run = json.loads((out / "run.json").read_text())
    del run["averaging"]
    run.update(status="training", best_val_loss=1e9)
    (out / "run.json").write_text(json.dumps(run))
    real_write = run_module.write_run

    def write_then_die(path, obj):
        if "averaging" in obj:
            raise Killed("killed while choosing")
        real_write(path, obj)

    monkeypatch.setattr(run_module, "write_run", write_then_die)
    with pytest.raises(Killed, match="choosing"):
        train_translation_run(out, train, val, **settings)
    monkeypatch.setattr(run_module, "write_run", real_write)
    assert json.loads((out / "run.json").read_text())["status"] == "training"

    run = train_translation_run(out, train, val, **settings)
    assert run["averaging"]["chosen"] == "average"
    assert run["steps_done"] == 3 * batches
    check_choice(out)  # the run's model is the average of epochs 2 and 3
    assert isinstance(ks.Translator.load(out).translate(["ein hundo siehta"])[0], str)
