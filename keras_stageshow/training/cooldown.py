"""The learning-rate cooldown of a training run: when the linear fall to
zero at the end of a run (`TransformerSchedule(cooldown_steps=...)`) begins
and ends, planned from the run's budget, and put on the run's optimizer.

With `cooldown_fraction=f` (a recipe setting), the last share `f` of the
run's steps cool down. A run limited by epochs only knows its steps when it
begins (epochs times batches an epoch) and plans at once. A run with
`time_limit_minutes` knows them only from its own speed: at the end of each
epoch it projects the epochs it will finish, by the rule `RunProgress`
stops it by (the next epoch goes at the pace of the last one's batches after
its first, which may have traced the step), and plans when the epochs left
are the last share `f` of that projection; the cooldown then ends where the
projection ends. The plan is written once, to
`run.json` (`"cooldown"`), and a resumed run keeps it, whatever limits it
is resumed with: the steps already taken followed it.
"""

from keras_stageshow.training.schedule import TransformerSchedule


def plan_cooldown(run, batches_per_epoch, projected_epochs=None):
    """The run's cooldown, `{"start_step", "end_step"}`, or None.

    Args:
        run: the `run.json` content; its plan if it has one, else a new
            one when it can be made now (see the module's comment).
        batches_per_epoch: int, the training steps of one epoch.
        projected_epochs: the epochs a time-limited run will have finished
            when its limit stops it, as `RunProgress` projects them at an
            epoch's end; None before the first (it cannot plan yet).
    """
    if run.get("cooldown"):
        return run["cooldown"]
    config = run["settings"]
    fraction = config.get("cooldown_fraction") or 0.0
    if not fraction:
        return None
    epochs_done = run["epochs_done"]
    # The optimizer's count: below epochs x batches when mixed_float16's
    # loss scaling skipped steps.
    steps_done = run.get("steps_done", 0)
    epochs = config["epochs"]
    limit = config.get("time_limit_minutes")
    if limit:
        if projected_epochs is None:
            return None
        epochs = projected_epochs if epochs is None else min(epochs, projected_epochs)
        if epochs_done < round((1 - fraction) * epochs):
            return None  # not yet: the next epoch's speed may change the projection
        start_step = steps_done
    else:
        start_step = max(steps_done, cooldown_steps_for(epochs, batches_per_epoch, fraction)[0])
    end_step = steps_done + (epochs - epochs_done) * batches_per_epoch
    if start_step >= end_step:
        return None
    return {"start_step": int(start_step), "end_step": int(end_step)}


def cooldown_steps_for(epochs, batches_per_epoch, fraction):
    """`(start, end)` for `TransformerSchedule(cooldown_steps=...)` when
    training is `epochs` epochs of `batches_per_epoch` steps and the last
    share `fraction` of them cool down: what `stageshow train` plans for a
    run limited by epochs, and what a `model.fit` of that many epochs
    passes to `compile(cooldown_steps=...)`.

    Example:
    >>> cooldown_steps_for(20, 245, 0.2)
    (3920, 4900)
    """
    total = epochs * batches_per_epoch
    return round((1 - fraction) * total), total


def cooldown_done(run):
    """Whether the run has taken its cooldown's last step (the learning rate
    is zero from there: more epochs would change nothing)."""
    cooldown = run.get("cooldown")
    return bool(cooldown) and run.get("steps_done", 0) >= cooldown["end_step"]


def use_cooldown(model, config, cooldown):
    """Puts the recipe's schedule with `cooldown` (or none) on the compiled
    `model`'s optimizer, keeping the optimizer and its state, and has the
    next `fit` trace its step again: the schedule is read when the step is
    traced."""
    model.optimizer.learning_rate = TransformerSchedule(
        model.d_model,
        config["warmup_steps"],
        scale=config["learning_rate_scale"],
        cooldown_steps=cooldown and (cooldown["start_step"], cooldown["end_step"]),
    )
    model.make_train_function(force=True)
