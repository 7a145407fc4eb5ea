"""A time-limited run's dropout follows the epochs its limit affords at
the pace it times when it begins (`training/pace.py`,
`recipe.dropout_rate_for_budget`)."""

import functools
import json

import pytest

from conftest import train_tiny_run
from keras_stageshow.training import recipe


@pytest.mark.parametrize(
    "budget, epochs, dropout_rate",
    [
        (dict(time_limit_minutes=45, seconds_per_epoch=96.0), 28, 0.2),
        (dict(time_limit_minutes=45, seconds_per_epoch=97.0), 27, 0.15),
        (dict(time_limit_minutes=45, seconds_per_epoch=135.0), 20, 0.15),
        (dict(time_limit_minutes=45, seconds_per_epoch=136.0), 19, 0.1),
        # The epoch limit bounds what the time limit affords.
        (dict(epochs=19, time_limit_minutes=135, seconds_per_epoch=10.0), 19, 0.1),
        (dict(epochs=None, time_limit_minutes=None), None, 0.2),
        # A step too fast to time (a tiny model): no bound from the clock.
        (dict(time_limit_minutes=1, seconds_per_epoch=0.0), None, 0.2),
    ],
)
def test_the_dropout_follows_the_epochs_a_time_limit_affords(
    budget, epochs, dropout_rate
):
    assert recipe.affordable_epochs(**budget) == epochs
    assert recipe.dropout_rate_for_budget(**budget) == dropout_rate


def test_a_time_limit_without_the_pace_is_refused():
    with pytest.raises(ValueError, match="pass `seconds_per_epoch`"):
        recipe.dropout_rate_for_budget(time_limit_minutes=45)


class Steps:
    """A model whose steps take the seconds listed, on a fake clock."""

    def __init__(self, train_seconds, val_seconds):
        self.now = 0.0
        self.train_seconds = list(train_seconds)
        self.val_seconds = list(val_seconds)

    def clock(self):
        return self.now

    def train_on_batch(self, inputs, targets):
        self.now += self.train_seconds.pop(0)

    def test_on_batch(self, inputs, targets):
        self.now += self.val_seconds.pop(0)


@pytest.mark.tf_only  # tf.data batches
def test_the_pace_is_the_median_step_so_tracing_and_a_slow_step_do_not_count():
    import tensorflow as tf

    from keras_stageshow.training import pace

    # Three batches, repeated for the steps timed.
    batches = tf.data.Dataset.from_tensor_slices((tf.zeros((3, 2)), tf.zeros((3, 2))))
    train = [9.0] * pace.PACE_WARMUP_STEPS + [0.5] * (pace.PACE_TIMED_STEPS - 1) + [7.0]
    val = [4.0] * pace.PACE_WARMUP_STEPS + [0.2] * pace.PACE_VALIDATION_STEPS
    model = Steps(train, val)
    measured = pace.measure_pace(model, batches, batches, 245, 10, clock=model.clock)
    assert not model.train_seconds and not model.val_seconds  # every step ran
    assert measured["seconds_per_step"] == 0.5
    assert measured["seconds_per_validation_step"] == pytest.approx(0.2)
    assert measured["seconds_per_epoch"] == pytest.approx(0.5 * 245 + 0.2 * 10)
    assert measured["steps_timed"] == pace.PACE_TIMED_STEPS
    assert measured["seconds"] == pytest.approx(sum(train) + sum(val))


@pytest.mark.tf_only  # tf.data batches
def test_under_xla_the_first_step_of_each_shape_is_not_timed():
    import tensorflow as tf

    from keras_stageshow.training import pace

    def batches(lengths):
        return tf.data.Dataset.from_generator(
            lambda: ((tf.zeros((2, n)), tf.zeros((2, n))) for n in lengths),
            output_signature=(tf.TensorSpec((2, None)), tf.TensorSpec((2, None))),
        )

    # Five shapes in turn: each one's first step compiles (30 s), the rest
    # take 1 s.
    lengths = [3, 4, 5, 6, 7] * 20
    train = [30.0 if i < 5 else 1.0 for i in range(len(lengths))]
    val = [30.0 if i < 5 else 0.5 for i in range(len(lengths))]
    model = Steps(train, val)
    measured = pace.measure_pace(
        model, batches(lengths), batches(lengths), 100, 10,
        compiles_each_shape=True, clock=model.clock,
    )
    assert measured["seconds_per_step"] == 1.0
    assert measured["seconds_per_validation_step"] == 0.5
    assert measured["steps_timed"] == pace.PACE_TIMED_STEPS
    # Without XLA the compiles count: five of the first eight steps.
    model = Steps(train, val)
    measured = pace.measure_pace(
        model, batches(lengths), batches(lengths), 100, 10, clock=model.clock
    )
    assert measured["seconds_per_validation_step"] == 30.0


@pytest.mark.tf_only  # training runs: tf.data and the tokenizers
# The mid step (0.15) takes the same path with another value: the rule
# itself is tested above, and each case here is a ~26 s training run.
@pytest.mark.parametrize("epochs_afforded, dropout_rate", [(2, 0.2), (1, 0.1)])
def test_a_time_limited_run_fixes_its_dropout_by_its_pace_and_keeps_it(
    tmp_path, monkeypatch, capsys, epochs_afforded, dropout_rate
):
    from keras_stageshow.run_dir import load_model
    from keras_stageshow.training import pace
    from keras_stageshow.training import run as run_module

    # Every step takes 0.5 s on the probe's clock.
    ticks = iter(range(10**6))
    clock = lambda: 0.5 * next(ticks)  # each reading 0.5 s after the last
    monkeypatch.setattr(
        run_module, "measure_pace", functools.partial(pace.measure_pace, clock=clock)
    )
    # A long run is 2 epochs (and a mid-length one too, so 1 is short).
    monkeypatch.setattr(recipe, "MID_RUN_EPOCHS", 2)
    monkeypatch.setattr(recipe, "LONG_RUN_EPOCHS", 2)
    out = tmp_path / "run"
    batches = train_tiny_run(tmp_path / "sizes", epochs=1)
    epoch_seconds = 0.5 * (
        batches["train_data"]["batches"] + batches["val_data"]["batches"]
    )
    # The real clock's epochs (under a second here) end the run by its
    # epochs, not by the limit.
    minutes = (epochs_afforded + 0.5) * epoch_seconds / 60
    capsys.readouterr()
    run = train_tiny_run(
        out, epochs=2, time_limit_minutes=minutes, dropout_rate="auto", verbose=2
    )
    # It says what it timed and chose.
    assert (
        f"0.500 s a step, about {epoch_seconds:.0f} s an epoch, {epochs_afforded} "
        f"epochs in {minutes:g} minutes: dropout {dropout_rate:g}"
    ) in capsys.readouterr().out
    assert run["pace"]["seconds_per_step"] == 0.5
    assert run["pace"]["affordable_epochs"] == epochs_afforded
    assert run["settings"]["dropout_rate"] == dropout_rate
    model = load_model(str(out / "model.keras"))
    assert model.get_config()["dropout_rate"] == dropout_rate
    # Run again, the run keeps what it fixed and times nothing.
    monkeypatch.setattr(run_module, "measure_pace", None)
    again = train_tiny_run(
        out, epochs=2, time_limit_minutes=minutes, dropout_rate="auto"
    )
    assert again["settings"]["dropout_rate"] == dropout_rate
    assert json.loads((out / "run.json").read_text())["pace"] == run["pace"]
    # The model starts from the seed, as a run given that dropout does:
    # the probe leaves no trace in what the run trains.
    given = train_tiny_run(
        tmp_path / "given", epochs=2, time_limit_minutes=minutes,
        dropout_rate=dropout_rate,
    )
    assert "pace" not in given
    history = (out / "history.csv").read_text().splitlines()
    assert history[:2] == (tmp_path / "given" / "history.csv").read_text().splitlines()[:2]


def test_a_run_killed_before_it_timed_its_step_resumes_with_a_dropout():
    saved = recipe.new_run_settings({"time_limit_minutes": 45.0})
    assert saved["dropout_rate"] == "auto"
    # Still time-limited: it times its step when resumed.
    assert recipe.resumed_run_settings(saved, {}, "run")["dropout_rate"] == "auto"
    # Given a dropout, it takes it (it has not trained).
    given = recipe.resumed_run_settings(saved, {"dropout_rate": 0.3}, "run")
    assert given["dropout_rate"] == 0.3
    # Given an epoch limit that settles it alone.
    assert recipe.resumed_run_settings(saved, {"epochs": 19}, "run")["dropout_rate"] == 0.1
    assert recipe.resumed_run_settings(saved, {"epochs": 20}, "run")["dropout_rate"] == "auto"
    assert recipe.resumed_run_settings(
        saved, {"epochs": 20, "time_limit_minutes": None}, "run"
    )["dropout_rate"] == 0.15
    assert recipe.resumed_run_settings(
        saved, {"epochs": 60, "time_limit_minutes": None}, "run"
    )["dropout_rate"] == 0.2
