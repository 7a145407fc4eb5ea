"""The pace of a training run on this machine: the seconds one epoch takes,
timed before the run begins on a few training steps of a throwaway model
of the run's size on the run's own batches.

A run given a time limit fixes its dropout when it begins
(`recipe.dropout_rate_for_budget`), and which dropout pays depends on the
epochs the limit affords, which depend on the machine: 45 minutes were
19-25 epochs on one two-core machine and about 30 on another
(benchmarks/README.md, section 9). The epochs are only known by timing the
step, so the run times one first (`measure_pace`), and `run.json` records
what was measured (`"pace"`). The projection is of the steps alone: it
leaves out the run's own compilation, its checkpoints and backups, and
another process slowing the machine later.
"""

import statistics
import time

# The first steps trace the step function (TensorFlow traces two batch
# shapes, then a step for any shape), so they are run but not timed. Under
# XLA each new shape compiles: the first step of each shape is not timed.
PACE_WARMUP_STEPS = 3
PACE_TIMED_STEPS = 20
PACE_VALIDATION_STEPS = 3
# At most this many steps in all (XLA: the run's up to 16 shapes, each
# once untimed, and the steps timed).
PACE_MAX_STEPS = 60


def measure_pace(
    model, train, val, train_batches, val_batches, compiles_each_shape=False,
    clock=time.monotonic,
):
    """Times `model`'s training and validation steps and projects one epoch.

    The first steps (which trace) are run untimed; each later step is timed
    alone and the median is kept, so that a step slowed by another process
    does not move the projection. The model's weights change: pass a copy
    that is thrown away.

    Args:
        model: a compiled, built `keras.Model` of the run's size and
            settings.
        train, val: the run's datasets of `(inputs, targets)` batches; they
            are repeated when shorter than the steps timed.
        train_batches, val_batches: ints, the batches of one epoch of each.
        compiles_each_shape: bool, whether each new batch shape compiles a
            program (`jit_compile=True`): its first step is not timed.
        clock: seconds (a test sets its own).

    Returns a dict: `seconds_per_step` and `seconds_per_validation_step`
    (medians), `seconds_per_epoch` (an epoch of training and its
    validation at those medians), `steps_timed` and `seconds` (the probe's
    own time, warm-up included).

    Example (two Intel Xeon cores, the Multi30k default, bfloat16):
    >>> pace = measure_pace(probe_model, train, val, 245, 10)
    >>> pace["seconds_per_epoch"]
    88.4
    """
    began = clock()
    train_times = _step_seconds(
        model.train_on_batch, train, PACE_TIMED_STEPS, compiles_each_shape, clock
    )
    val_times = _step_seconds(
        model.test_on_batch, val, PACE_VALIDATION_STEPS, compiles_each_shape, clock
    )
    step = statistics.median(train_times)
    val_step = statistics.median(val_times)
    return {
        "seconds_per_step": step,
        "seconds_per_validation_step": val_step,
        "seconds_per_epoch": step * train_batches + val_step * val_batches,
        "steps_timed": len(train_times),
        "seconds": clock() - began,
    }


def _step_seconds(step, dataset, timed, compiles_each_shape, clock):
    """The seconds of up to `timed` calls of `step` on `dataset`'s batches,
    after `PACE_WARMUP_STEPS` untimed ones (and, with `compiles_each_shape`,
    leaving out the first call of each shape)."""
    seconds, shapes = [], set()
    batches = iter(dataset.repeat().take(PACE_MAX_STEPS))
    for i, (inputs, targets) in enumerate(batches):
        shape = tuple(tuple(x.shape) for x in (*inputs, targets))
        new_shape = shape not in shapes
        shapes.add(shape)
        start = clock()
        # Returns numbers (numpy): the step has finished when it returns.
        step(inputs, targets)
        if i >= PACE_WARMUP_STEPS and not (compiles_each_shape and new_shape):
            seconds.append(clock() - start)
            if len(seconds) == timed:
                break
    if not seconds:
        raise ValueError(
            f"No step could be timed in {PACE_MAX_STEPS}: every batch had a new "
            "shape. Pass `dropout_rate` explicitly, or `bounded_shapes=True`."
        )
    return seconds
