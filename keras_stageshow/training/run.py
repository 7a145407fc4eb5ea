"""A training run: trains (or resumes) a translator into a RUN_DIR, the
folder that holds everything one training makes (its layout:
`keras_stageshow/run_dir.py`).

This module is the orchestration only: the settings come from `recipe.py`
(a time-limited run's dropout from the pace `pace.py` times),
the tokenizers from `tokenizers.py`, the callbacks from `callbacks.py`,
`backup.py` and `averaging.py`, which also makes the final choice between
averaged and single epochs, and the learning rate's cooldown at the end of
the run from `cooldown.py`.

Running the same command again on the same RUN_DIR resumes: the tokenizers
and settings are read back, `StepBackup` restores the weights, the
optimizer, the epoch and the batches done in it, the rest of that epoch is
trained on the batches it had not seen (each epoch's batch order is fixed by
the epoch number), and training goes on: a run killed at any moment ends
with as many steps as an uninterrupted one. With `average_last=N`, the
last N epochs' models are averaged when training ends, and so are the N
ending at the best epoch when those differ (a run that went on past its
best epoch); the run keeps the average or the best single epoch with the
lowest validation loss (`run.json`'s `averaging` says which); a run killed during that step
does it again when resumed. Every file a run writes goes through a
temporary name and a rename.
"""

import os
import shutil

import keras
import tensorflow as tf

from keras_stageshow.datasets.pipeline import make_translation_dataset
from keras_stageshow.models.transformer import Transformer
from keras_stageshow.run_dir import BACKUP_DIR
from keras_stageshow.run_dir import EPOCHS_DIR
from keras_stageshow.run_dir import MODEL_FILE
from keras_stageshow.run_dir import RunLock
from keras_stageshow.run_dir import is_run_dir
from keras_stageshow.run_dir import new_run
from keras_stageshow.run_dir import read_run
from keras_stageshow.run_dir import write_run
from keras_stageshow.training.averaging import LastEpochCheckpoints
from keras_stageshow.training.averaging import choose_average
from keras_stageshow.training.backup import StepBackup
from keras_stageshow.training.callbacks import RunProgress
from keras_stageshow.training.callbacks import fit_callbacks
from keras_stageshow.training.callbacks import trim_history
from keras_stageshow.training.cooldown import cooldown_done
from keras_stageshow.training.cooldown import plan_cooldown
from keras_stageshow.training.cooldown import use_cooldown
from keras_stageshow.training.pace import measure_pace
from keras_stageshow.training.recipe import MODEL_SETTINGS
from keras_stageshow.training.recipe import SHORT_RUN_DROPOUT_RATE
from keras_stageshow.training.recipe import affordable_epochs
from keras_stageshow.training.recipe import check_settings
from keras_stageshow.training.recipe import dropout_rate_for_budget
from keras_stageshow.training.recipe import epoch_limit
from keras_stageshow.training.recipe import needs_pace
from keras_stageshow.training.recipe import new_run_settings
from keras_stageshow.training.recipe import resumed_run_settings
from keras_stageshow.training.tokenizers import load_tokenizers
from keras_stageshow.training.tokenizers import save_tokenizers
from keras_stageshow.training.tokenizers import train_tokenizers


def train_translation_run(
    out,
    train_pairs,
    val_pairs,
    data_description="",
    verbose=1,
    callbacks=(),
    **settings,
):
    """Trains (or resumes) a translation run in the folder `out`.

    Args:
        out: the RUN_DIR.
        train_pairs, val_pairs: `(source_texts, target_texts)` tuples.
        data_description: str recorded in `run.json`.
        verbose: Keras verbosity for `fit` (1 shows progress bars).
        callbacks: extra Keras callbacks.
        **settings: any of `recipe.DEFAULT_SETTINGS` (model size,
            tokenizer, training recipe). `average_last=N` (N >= 1, 5 by
            default; 0 turns it off) keeps the last N epochs' models and the
            N ending at the best epoch in `out/epochs/` and, when training
            ends, keeps as the run's model the average of either or the best
            single epoch, whichever has the lowest validation loss.

    Returns the run's `run.json` content after training.

    Example:
    >>> run = train_translation_run("runs/m30k", train, val, epochs=20,
    ...                             average_last=5)
    >>> run["averaging"]["chosen"]  # "average", "average_to_best", "best_single"
    """
    check_settings(settings)
    os.makedirs(out, exist_ok=True)
    # One process per RUN_DIR, from reading run.json to the final clean-up.
    with RunLock(out):
        run, tokenizers = _open_run(
            out, train_pairs, data_description, settings, verbose
        )
        config = run["settings"]
        keras.utils.set_random_seed(config["seed"])
        data = _RunData(train_pairs, val_pairs, config, tokenizers)
        run["train_data"], run["val_data"] = data.train_stats, data.val_stats
        if needs_pace(config):
            _fix_dropout_by_pace(out, run, tokenizers, data, verbose)
            # The model starts from the seed, as without the probe.
            keras.utils.set_random_seed(config["seed"])
        model = _build_model(config, tokenizers, data.val)
        run["parameters"] = int(model.count_params())
        checkpoints = _epoch_checkpoints(out, run)
        # A run limited by epochs only plans its cooldown now (a plan made
        # before is kept).
        cooldown = plan_cooldown(run, data.train_stats["batches"])
        if cooldown:
            run["cooldown"] = cooldown
        if run["status"] != "complete" and run["epochs_done"] < epoch_limit(config):
            _train(out, run, model, data, checkpoints, callbacks, verbose)
        elif verbose and epoch_limit(config) > run["epochs_done"]:
            print(
                f"The run in {out} is complete ({run['epochs_done']} epochs) and "
                "final; to train longer, train into a new --out folder."
            )
        return _finish(out, checkpoints, data.val, verbose)


def _open_run(out, train_pairs, data_description, settings, verbose):
    """`(run, tokenizers)`: read back when `out` holds a run (its settings
    checked against `settings`), else begun: the settings fixed, the
    tokenizers trained, both saved."""
    if is_run_dir(out):
        run = read_run(out)
        run["settings"] = resumed_run_settings(run["settings"], settings, out)
        tokenizers = load_tokenizers(out)
        if verbose:
            print(f"Resuming the run in {out} from epoch {run['epochs_done']}.")
        return run, tokenizers
    config = new_run_settings(
        settings, has_gpu=bool(tf.config.list_physical_devices("GPU"))
    )
    tokenizers = train_tokenizers(train_pairs, config)
    save_tokenizers(out, tokenizers)
    run = new_run(config, data_description)
    write_run(out, run)
    return run, tokenizers


class _RunData:
    """The run's datasets. Each epoch's batch order is a permutation keyed
    by the epoch number (`epoch_number`, set by `EpochNumber` as the epoch
    begins), so a resumed run sees the batches an uninterrupted one would;
    `rest_of_epoch` gives the batches an interrupted epoch had not seen."""

    def __init__(self, train_pairs, val_pairs, config, tokenizers):
        self.train_pairs = train_pairs
        self.seed = config["seed"]
        self.common = dict(
            source_tokenizer=tokenizers[0],
            target_tokenizer=tokenizers[1],
            max_length=config["max_length"],
            tokens_per_batch=config["tokens_per_batch"],
            bounded_shapes=bool(config["bounded_shapes"]),
        )
        with tf.device("CPU:0"):  # read by the tf.data pipeline, on the host
            self.epoch_number = tf.Variable(0, dtype="int64", trainable=False)
        self.train, self.train_stats = make_translation_dataset(
            *train_pairs, seed=self.seed, epoch=self.epoch_number,
            return_stats=True, **self.common,
        )
        # Validation is a small share of the time but, under XLA, compiles a
        # program per shape as training does: fewer shapes, a little more
        # padding.
        self.val, self.val_stats = make_translation_dataset(
            *val_pairs, shuffle=False, return_stats=True, max_shapes=4,
            **self.common,
        )

    def rest_of_epoch(self, epoch, batches_done):
        """Epoch `epoch`'s batches in their order, without its first
        `batches_done`."""
        return make_translation_dataset(
            *self.train_pairs, seed=self.seed, epoch=epoch,
            skip_batches=batches_done, **self.common,
        )


def _fix_dropout_by_pace(out, run, tokenizers, data, verbose):
    """Sets the run's "auto" dropout by the epochs its time limit affords
    at this machine's pace (`pace.measure_pace`, on a throwaway model with
    the short runs' dropout); records the pace in `run.json`."""
    config = run["settings"]
    probe = _build_model(
        {**config, "dropout_rate": SHORT_RUN_DROPOUT_RATE}, tokenizers, data.val
    )
    pace = measure_pace(
        probe, data.train, data.val,
        data.train_stats["batches"], data.val_stats["batches"],
        compiles_each_shape=bool(config["jit_compile"]),
    )
    del probe
    epochs = affordable_epochs(
        config["epochs"], config["time_limit_minutes"], pace["seconds_per_epoch"]
    )
    config["dropout_rate"] = dropout_rate_for_budget(epochs)
    run["pace"] = {
        "seconds_per_step": round(pace["seconds_per_step"], 4),
        "seconds_per_validation_step": round(pace["seconds_per_validation_step"], 4),
        "seconds_per_epoch": round(pace["seconds_per_epoch"], 2),
        "steps_timed": pace["steps_timed"],
        "seconds": round(pace["seconds"], 1),
        "affordable_epochs": epochs,
    }
    write_run(out, run)
    if verbose:
        print(
            f"Timed {pace['steps_timed']} training steps: "
            f"{pace['seconds_per_step']:.3f} s a step, about "
            f"{pace['seconds_per_epoch']:.0f} s an epoch, "
            f"{run['pace']['affordable_epochs']} epochs in "
            f"{config['time_limit_minutes']:g} minutes: dropout "
            f"{config['dropout_rate']:g} (give a dropout rate to choose it)."
        )


def _build_model(config, tokenizers, val_data):
    source_tokenizer, target_tokenizer = tokenizers
    model = Transformer(
        source_tokenizer.vocabulary_size(),
        target_tokenizer.vocabulary_size(),
        share_embeddings=config["shared_vocabulary"],
        dtype=config["dtype_policy"],
        **{k: config[k] for k in MODEL_SETTINGS},
    )
    model.compile(
        warmup_steps=config["warmup_steps"],
        learning_rate_scale=config["learning_rate_scale"],
        label_smoothing=config["label_smoothing"],
        jit_compile=config["jit_compile"],
    )
    (first_source, first_target_in), _ = next(iter(val_data))
    model((first_source[:1], first_target_in[:1]))  # build before restoring
    return model


def _epoch_checkpoints(out, run):
    """The run's `LastEpochCheckpoints`, or None without `average_last`."""
    average_last = run["settings"]["average_last"]
    if not average_last:
        return None
    return LastEpochCheckpoints(
        os.path.join(out, EPOCHS_DIR), average_last,
        best=run["best_epoch"] and (run["best_epoch"], run["best_val_loss"]),
    )


def _train(out, run, model, data, checkpoints, callbacks, verbose):
    """Trains the epochs the run has left, from its backup if it has one."""
    config = run["settings"]
    backup = StepBackup(os.path.join(out, BACKUP_DIR), config["backup_every_steps"])
    if run["epochs_done"] and backup.state() is None:
        raise ValueError(
            f"{out} has {run['epochs_done']} finished epochs but no {BACKUP_DIR}/ "
            "folder to resume them from, so resuming would silently start "
            "over. Train into a new --out folder (the best model so far is "
            f"{os.path.join(out, MODEL_FILE)})."
        )
    epoch, batches_done = backup.restore(model)
    trim_history(out, epoch)
    if verbose and config["epochs"] is None:
        print(
            f"No epoch limit: the run ends at its time limit "
            f"({config['time_limit_minutes']:g} minutes)"
            + (
                f" or after {config['patience']} epochs without a better "
                "validation loss." if config["patience"] else "."
            )
        )
    run["status"] = "training"
    write_run(out, run)
    # Kept across the fits; `fit_callbacks` adds a new history logger and
    # TensorBoard writer to each.
    parts = dict(
        epoch_number=data.epoch_number, checkpoints=checkpoints,
        progress=RunProgress(out, run, data.train_stats["batches"]),
        backup=backup, extra=callbacks,
    )
    # The schedule on the model follows run.json's cooldown, planned when
    # the run began, at an epoch's end before a kill, or by `RunProgress`
    # at an epoch's end below.
    on_model = run.get("cooldown")
    if on_model:
        use_cooldown(model, config, on_model)
    # shuffle=False: the dataset orders its batches every epoch.
    fit = dict(validation_data=data.val, shuffle=False, verbose=verbose)
    if batches_done:
        # The rest of the interrupted epoch: its batches in the same
        # order, without those already trained on.
        rest = data.rest_of_epoch(epoch, batches_done)
        if verbose:
            print(
                f"Resuming epoch {epoch + 1} after its first "
                f"{batches_done} batches."
            )
        backup.batch_offset = batches_done
        model.fit(
            rest, initial_epoch=epoch, epochs=epoch + 1,
            callbacks=fit_callbacks(out, **parts), **fit,
        )
        epoch += 1
    backup.batch_offset = 0
    while _epochs_left(run, epoch):
        if run.get("cooldown") != on_model:
            on_model = run["cooldown"]
            use_cooldown(model, config, on_model)
        model.fit(
            data.train, initial_epoch=epoch, epochs=epoch_limit(config),
            callbacks=fit_callbacks(out, **parts), **fit,
        )
        epoch = run["epochs_done"]
        if run.get("cooldown") == on_model:
            # Its epochs, the time limit, its patience, the cooldown's end
            # or a caller's callback ended it; else a time-limited run planned its
            # cooldown at an epoch's end, stopped there, and goes on.
            break


def _epochs_left(run, epoch):
    """Whether the run trains on after `epoch` epochs."""
    return (
        epoch < epoch_limit(run["settings"])
        and not run.get("stopped_by_time_limit")
        and not run.get("stopped_by_patience")
        and not cooldown_done(run)
    )


def _finish(out, checkpoints, val_data, verbose):
    """Marks the run complete (after choosing its model, with
    `average_last`) and deletes its backup; returns `run.json`'s content."""
    run = read_run(out)
    if run["status"] != "complete":
        if checkpoints is not None:
            # Written with the status in one step: a run killed before it
            # averages again (the same checkpoints, the same choice).
            run["averaging"] = choose_average(
                out, run, checkpoints, val_data, verbose
            )
        # Marked complete before the backup is deleted, so no moment exists
        # where the run is unfinished and has no backup.
        run["status"] = "complete"
        write_run(out, run)
    backup_dir = os.path.join(out, BACKUP_DIR)
    if os.path.isdir(backup_dir):
        shutil.rmtree(backup_dir)
    return run
