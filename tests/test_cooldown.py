"""The learning rate's cooldown: `TransformerSchedule(cooldown_steps=...)`
falls linearly to zero, and a training run plans it from its budget
(`cooldown_fraction` of its epochs, or of what its time limit allows), keeps
the plan in run.json, and resumes with it."""

import json

import keras
import numpy as np
import pytest

from conftest import FakeTime
from conftest import train_tiny_run as train
from keras_stageshow.training.cooldown import plan_cooldown
from keras_stageshow.training.schedule import TransformerSchedule


def rates(schedule, iterations):
    return np.array([float(schedule(i)) for i in iterations])


def test_the_cooldown_falls_linearly_to_zero_after_the_papers_schedule():
    paper = TransformerSchedule(64, 10, scale=2.0)
    cooled = TransformerSchedule(64, 10, scale=2.0, cooldown_steps=(30, 50))
    before = range(0, 31)
    np.testing.assert_allclose(rates(cooled, before), rates(paper, before), rtol=1e-6)
    during = np.arange(30, 50)
    np.testing.assert_allclose(
        rates(cooled, during), rates(paper, during) * (50 - during) / 20, rtol=1e-5
    )
    assert rates(cooled, [49])[0] > 0
    np.testing.assert_array_equal(rates(cooled, [50, 51, 200]), 0.0)


def test_a_schedule_with_a_cooldown_round_trips_its_config():
    schedule = TransformerSchedule(64, 10, scale=2.0, cooldown_steps=(30, 50))
    config = keras.saving.serialize_keras_object(schedule)
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert again.cooldown_steps == (30, 50)
    np.testing.assert_allclose(rates(again, range(60)), rates(schedule, range(60)))
    # A config saved before the argument existed has no cooldown.
    old = TransformerSchedule.from_config({"d_model": 64, "warmup_steps": 10, "scale": 1.0})
    assert old.cooldown_steps is None


@pytest.mark.parametrize("bad", [(50, 30), (-1, 5), (3, 3), (0.5, 9), "30"])
def test_a_bad_cooldown_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="cooldown_steps"):
        TransformerSchedule(64, 10, cooldown_steps=bad)


def a_run(epochs_done=0, train_seconds=0.0, **settings):
    settings = {"cooldown_fraction": 0.2, "epochs": 20, "time_limit_minutes": None,
                **settings}
    return {"settings": settings, "epochs_done": epochs_done,
            "steps_done": 10 * epochs_done, "train_seconds": train_seconds}


def test_a_run_limited_by_epochs_plans_its_cooldown_when_it_begins():
    assert plan_cooldown(a_run(), batches_per_epoch=10) == {
        "start_step": 160, "end_step": 200,
    }
    assert plan_cooldown(a_run(cooldown_fraction=0.0), batches_per_epoch=10) is None
    # A plan made is kept, whatever the settings say now.
    run = {**a_run(epochs=40), "cooldown": {"start_step": 160, "end_step": 200}}
    assert plan_cooldown(run, 10) == {"start_step": 160, "end_step": 200}


def test_a_time_limited_run_plans_when_its_projected_last_share_begins():
    limit = dict(time_limit_minutes=10.0, epochs=100)
    # 60 s epochs in a 10-minute budget (`RunProgress` projects how many
    # fit): 10 epochs, the last 2 cool down.
    assert plan_cooldown(a_run(**limit), 10) is None  # no speed known yet
    assert plan_cooldown(a_run(1, 60.0, **limit), 10, projected_epochs=1 + 9) is None
    assert plan_cooldown(a_run(7, 420.0, **limit), 10, projected_epochs=7 + 3) is None
    assert plan_cooldown(a_run(8, 480.0, **limit), 10, projected_epochs=8 + 2) == {
        "start_step": 80, "end_step": 100,
    }
    # Slower epochs (150 s) than before: the projection shrinks (to 7) and
    # the plan comes at once, over the epoch that is left.
    assert plan_cooldown(a_run(6, 360.0, **limit), 10, projected_epochs=6 + 1) == {
        "start_step": 60, "end_step": 70,
    }
    # The epochs limit binds before the time limit does.
    assert plan_cooldown(
        a_run(8, 80.0, time_limit_minutes=10.0, epochs=10), 10, projected_epochs=8 + 52
    ) == {"start_step": 80, "end_step": 100}
    # Steps that mixed_float16's loss scaling skipped: the plan is made by
    # epochs, and counts from the optimizer's steps.
    skipped = {**a_run(8, 480.0, **limit), "steps_done": 77}
    assert plan_cooldown(skipped, 10, projected_epochs=8 + 2) == {
        "start_step": 77, "end_step": 97,
    }


class StopInEpoch(keras.callbacks.Callback):
    """Raises before batch `batch` of epoch `epoch`, as a kill would
    interrupt the run there."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`(RUN_DIR, run.json)` of 5 epochs, the last 40% cooling down."""
    out = tmp_path_factory.mktemp("cooldown") / "epochs"
    return out, train(out, epochs=5, cooldown_fraction=0.4)


def assert_same_weights(a, b):
    from keras_stageshow.run_dir import load_model

    a, b = load_model(str(a / "model.keras")), load_model(str(b / "model.keras"))
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


@pytest.mark.tf_only  # training runs: tf.data and the tokenizers
def test_a_run_cools_down_over_its_last_epochs_and_resumes_with_its_plan(
    tmp_path, reference
):
    from keras_stageshow.run_dir import load_model

    whole, run = reference
    batches = run["train_data"]["batches"]
    assert run["cooldown"] == {"start_step": 3 * batches, "end_step": 5 * batches}
    assert run["steps_done"] == 5 * batches
    schedule = keras.saving.deserialize_keras_object(
        load_model(str(whole / "model.keras")).optimizer.get_config()["learning_rate"]
    )
    assert schedule.cooldown_steps == (3 * batches, 5 * batches)
    assert float(schedule(5 * batches - 1)) > 0 and float(schedule(5 * batches)) == 0

    # Interrupted in the middle of an epoch of the cooldown (backed up at
    # every step), then resumed with another epochs limit: the rest of that
    # epoch and the next keep the plan, and the run ends as the
    # uninterrupted one did.
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", epochs=5, cooldown_fraction=0.4,
              backup_every_steps=1, callbacks=[StopInEpoch(3, 2)])
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["cooldown"] == (
        run["cooldown"]
    )
    resumed = train(tmp_path / "resumed", epochs=7, cooldown_fraction=0.4)
    assert resumed["epochs_done"] == 5 and resumed["steps_done"] == 5 * batches
    assert_same_weights(whole, tmp_path / "resumed")


@pytest.mark.tf_only  # training runs: tf.data and the tokenizers
def test_a_time_limited_run_plans_its_cooldown_from_its_pace(
    tmp_path, monkeypatch, reference
):
    from keras_stageshow.training import callbacks

    # `reference` is 5 epochs with the last 40% cooling down, planned at
    # the start; batches_per_epoch comes from it.
    whole, planned = reference
    batches = planned["train_data"]["batches"]

    # The same budget as a time limit: 30 s a batch, and 40 s to trace the
    # step at each `fit`'s start (the first, and the one after the plan).
    # 5 epochs fit with 10 s to spare; judged by the wall time of the epoch
    # after the plan (its retrace included), the run would stop one epoch
    # short, in the middle of its cooldown.
    clock = FakeTime(per_batch=30.0, trace=40.0)
    monkeypatch.setattr(callbacks.RunProgress, "clock", staticmethod(lambda: clock.now))
    minutes = (2 * 40 + 5 * 30 * batches + 10) / 60
    run = train(tmp_path / "time", epochs=50, time_limit_minutes=minutes,
                cooldown_fraction=0.4, callbacks=[clock])
    assert run["cooldown"] == planned["cooldown"]
    assert run["epochs_done"] == 5 and run["steps_done"] == 5 * batches
    assert run["stopped_by_time_limit"]
    history = (tmp_path / "time" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 5  # one row an epoch, across the two fits
    # The schedule changed mid-run, in the traced step too: the weights are
    # those of the run that had the plan from its first step.
    assert_same_weights(whole, tmp_path / "time")
