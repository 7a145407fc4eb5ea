"""When a training run stops: at its epoch limit, at its time limit (a run
given a time limit and no epochs has no epoch limit of its own), or once
`patience` epochs in a row have not lowered its best validation loss."""

import json

import keras
import pytest

from conftest import FakeTime
from conftest import train_tiny_run
from keras_stageshow.training.recipe import DEFAULT_SETTINGS
from keras_stageshow.training.recipe import check_settings
from keras_stageshow.training.recipe import new_run_settings
from keras_stageshow.training.recipe import resumed_run_settings


def test_a_time_limit_given_without_epochs_lifts_the_epoch_limit():
    assert new_run_settings({})["epochs"] == DEFAULT_SETTINGS["epochs"]
    assert new_run_settings({"time_limit_minutes": 135.0})["epochs"] is None
    # Epochs given with it: both limits hold.
    assert new_run_settings({"time_limit_minutes": 135.0, "epochs": 30})["epochs"] == 30
    # Resumed, the run keeps what it began with, or takes a new limit.
    saved = new_run_settings({"time_limit_minutes": 135.0})
    assert resumed_run_settings(saved, {}, "run")["epochs"] is None
    assert resumed_run_settings(saved, {"epochs": 40}, "run")["epochs"] == 40
    assert resumed_run_settings(saved, {"patience": 3}, "run")["patience"] == 3


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"patience": -1}, "patience"),
        ({"patience": 2.5}, "patience"),
    ],
)
def test_a_bad_patience_is_refused_by_name(settings, name):
    with pytest.raises(ValueError, match=name):
        check_settings(settings)


def test_a_run_with_neither_limit_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="--epochs N or --time-limit-minutes T"):
        new_run_settings({"epochs": None})
    saved = new_run_settings({"time_limit_minutes": 10.0})
    with pytest.raises(ValueError, match="--epochs N or --time-limit-minutes T"):
        resumed_run_settings(saved, {"time_limit_minutes": None}, "run")
    with pytest.raises(ValueError, match="`epochs`"):
        new_run_settings({"epochs": 0})


def test_run_progress_stops_once_patience_epochs_have_not_lowered_the_best(tmp_path):
    from keras_stageshow.training.callbacks import RunProgress

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    run = {
        "settings": {"patience": 2, "time_limit_minutes": None,
                     "cooldown_fraction": 0.0, "epochs": 50},
        "epochs_done": 0, "steps_done": 0, "train_seconds": 0.0,
        "best_val_loss": None, "best_epoch": None,
    }
    progress = RunProgress(str(tmp_path), run, batches_per_epoch=1)
    progress.set_model(model)
    progress.on_train_begin()
    stops = []
    # Epoch 4 is the best; 5 and 6 are not better (6 only by a hair).
    for epoch, val_loss in enumerate([3.0, 2.5, 2.6, 2.4, 2.45, 2.4001]):
        model.stop_training = False
        progress.on_epoch_begin(epoch)
        progress.on_train_batch_end(0)
        progress.on_epoch_end(epoch, {"val_loss": val_loss})
        stops.append(model.stop_training)
    # Epoch 3 was one epoch past the best (2): no stop; 6 is two past 4.
    assert stops == [False, False, False, False, False, True]
    assert run["best_epoch"] == 4 and run["stopped_by_patience"]


@pytest.mark.tf_only  # training runs: tf.data and the tokenizers
def test_a_time_limited_run_without_epochs_trains_past_the_default_epochs(
    tmp_path, monkeypatch, capsys
):
    from keras_stageshow.training import callbacks
    from keras_stageshow.training import recipe

    # A default of 2 epochs (for time), 1 s a batch on a fake clock and no
    # tracing time, and a time limit that fits 4 epochs.
    monkeypatch.setitem(recipe.DEFAULT_SETTINGS, "epochs", 2)
    clock = FakeTime(per_batch=1.0, trace=0.0)
    monkeypatch.setattr(callbacks.RunProgress, "clock", staticmethod(lambda: clock.now))
    batches = train_tiny_run(tmp_path / "default")["train_data"]["batches"]
    minutes = (4 * batches + 0.5) / 60
    capsys.readouterr()
    run = train_tiny_run(
        tmp_path / "time", time_limit_minutes=minutes, patience=0, callbacks=[clock],
        verbose=2,
    )
    assert run["settings"]["epochs"] is None
    assert run["epochs_done"] == 4 and run["stopped_by_time_limit"]
    # Its progress shows the minutes, not `fit`'s placeholder epoch count
    # (`TimeLimitProgbar`).
    shown = capsys.readouterr().out
    assert "Epoch 1 (0.0 of" in shown and f"Epoch 4 ({3 * batches / 60:.1f} of" in shown
    assert "Epoch 1/" not in shown and "/100000" not in shown


@pytest.mark.tf_only  # training runs: tf.data and the tokenizers
def test_a_run_that_overfits_stops_after_its_patience_and_stays_stopped(tmp_path):
    # 160 pairs and a high rate: the validation loss turns up within a few
    # epochs and never comes back down to its best.
    settings = dict(epochs=40, patience=3, learning_rate_scale=8.0)
    # Killed once training ends, after the stop is recorded and before the
    # run is finished (its backup still there).
    with pytest.raises(KeyboardInterrupt):
        train_tiny_run(tmp_path / "run", callbacks=[KillAtTrainEnd()], **settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["stopped_by_patience"] and run["status"] != "complete"
    assert run["epochs_done"] == run["best_epoch"] + 3 < 40
    # The same command again resumes the run and trains nothing more.
    again = train_tiny_run(tmp_path / "run", **settings)
    assert again["status"] == "complete"
    assert again["epochs_done"] == run["epochs_done"]


class KillAtTrainEnd(keras.callbacks.Callback):
    """Raises as `fit` ends, as a kill would interrupt the run there."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt
