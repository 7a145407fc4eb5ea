"""The Keras callbacks of a training run's `fit`: `fit_callbacks` lists them
in their order; `RunProgress` keeps `run.json` and the best model,
`EpochNumber` orders each epoch's batches, `TimeLimitProgbar` shows the
progress of a run with no epoch limit (the backup is `backup.py`'s, the
epochs kept for averaging `averaging.py`'s, the cooldown's plan
`cooldown.py`'s). `trim_history` makes the
per-epoch history (`history.csv`, Keras's CSVLogger) agree with the backup
a run resumes from."""

import csv
import io
import logging
import math
import os
import time

import keras

from keras_stageshow.files import save_model_atomically
from keras_stageshow.files import write_text_atomically
from keras_stageshow.run_dir import HISTORY_FILE
from keras_stageshow.run_dir import LOGS_DIR
from keras_stageshow.run_dir import MODEL_FILE
from keras_stageshow.run_dir import write_run
from keras_stageshow.training.cooldown import cooldown_done
from keras_stageshow.training.cooldown import plan_cooldown


def fit_callbacks(out, epoch_number, progress, backup, checkpoints=None, extra=()):
    """The callbacks of one `fit` of the run in `out`, in their order.

    Args:
        out: the RUN_DIR.
        epoch_number: the variable the training dataset orders its batches
            by (`EpochNumber`).
        progress: the run's `RunProgress`.
        backup: the run's `StepBackup`.
        checkpoints: the run's `LastEpochCheckpoints`, or None.
        extra: the caller's own callbacks, last.
    """
    return [
        # Keras adds its own progress bar to `fit` unless given one.
        *([TimeLimitProgbar(progress.run)] if progress.run["settings"]["epochs"] is None
          else []),
        EpochNumber(epoch_number),
        # Before `RunProgress` records the epoch in run.json: an epoch that
        # run.json calls done has its checkpoint.
        *([] if checkpoints is None else [checkpoints]),
        progress,
        keras.callbacks.CSVLogger(os.path.join(out, HISTORY_FILE), append=True),
        keras.callbacks.TensorBoard(os.path.join(out, LOGS_DIR)),
        backup,  # after them: an epoch's backup follows its records
        *extra,
    ]


class RunProgress(keras.callbacks.Callback):
    """Keeps `run.json` up to date, saves the best model on validation loss
    (atomically), and stops before `time_limit_minutes` would be passed
    (when the next epoch, at the pace of this one's batches after its first,
    would end past it) and once `patience` epochs in a row have not lowered
    the best validation loss.

    The best validation loss lives in `run.json`, so a resumed run keeps
    comparing against the best of the whole run, not of its last part.

    With a `cooldown_fraction`, it also plans the learning rate's cooldown
    when a time-limited run can (`training/cooldown.py`), and then stops
    `fit` so that the run goes on with it; and it stops the run once the
    cooldown has reached zero.

    Args:
        out: the RUN_DIR.
        run: the `run.json` content (a dict), updated in place at each
            epoch's end and written.
        batches_per_epoch: int, the training steps of one epoch.
    """

    clock = staticmethod(time.monotonic)  # seconds (a test sets its own)

    def __init__(self, out, run, batches_per_epoch):
        super().__init__()
        self.out = out
        self.run = run
        self.batches_per_epoch = batches_per_epoch

    def on_train_begin(self, logs=None):
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.clock()
        self._batches = 0
        self._first_batch_end = None

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches == 1:
            self._first_batch_end = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        run = self.run
        now = self.clock()
        seconds = now - self._epoch_start
        # The next epoch, at the pace of this one after its first batch
        # (which traces the step when a `fit` begins), validation included,
        # and scaled to a whole epoch (a resumed one trains only its rest).
        next_epoch_seconds = seconds
        if self._batches > 1:
            next_epoch_seconds = (
                (now - self._first_batch_end) * self.batches_per_epoch
                / (self._batches - 1)
            )
        run["train_seconds"] = round(run["train_seconds"] + seconds, 1)
        # Recorded for `benchmarks/multi30k_curve.py`, which stops a run
        # where a time limit would have, by this same projection.
        run["next_epoch_seconds"] = round(next_epoch_seconds, 1)
        run["epochs_done"] = epoch + 1
        run["steps_done"] = int(self.model.optimizer.iterations.numpy())
        val_loss = logs.get("val_loss")
        if val_loss is not None and (
            run["best_val_loss"] is None or val_loss < run["best_val_loss"]
        ):
            save_model_atomically(self.model, os.path.join(self.out, MODEL_FILE))
            run["best_val_loss"] = float(val_loss)
            run["best_epoch"] = epoch + 1
        patience = run["settings"].get("patience")
        if (
            patience and run["best_epoch"]
            and run["epochs_done"] - run["best_epoch"] >= patience
        ):
            self.model.stop_training = True
            run["stopped_by_patience"] = True
        limit = run["settings"].get("time_limit_minutes")
        projected_epochs = None
        if limit:
            # The epochs done when the limit stops the run: those that end
            # within it at this pace.
            projected_epochs = run["epochs_done"] + math.floor(
                (60 * limit - run["train_seconds"]) / next_epoch_seconds
            )
            if projected_epochs <= run["epochs_done"]:
                # The next epoch would end past the limit.
                self.model.stop_training = True
                run["stopped_by_time_limit"] = True
        if not run.get("cooldown"):
            cooldown = plan_cooldown(run, self.batches_per_epoch, projected_epochs)
            if cooldown:
                # Written with this epoch's record; `fit` stops, and the
                # run goes on with the schedule that has it.
                run["cooldown"] = cooldown
                self.model.stop_training = True
        if cooldown_done(run):
            self.model.stop_training = True
        write_run(self.out, run)


class TimeLimitProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, for a run with no epoch limit (one given a time
    limit and no `--epochs`). `fit` gets a placeholder number of epochs
    (`recipe.NO_EPOCH_LIMIT`), which Keras's bar would show as "Epoch
    3/100000"; this one shows "Epoch 3 (4.1 of 45 minutes trained)".

    Keras's bar prints its "Epoch n/N" line only when `fit` has more than one
    epoch, and has no public switch for it, so this one is told of one epoch.
    tests/test_stopping.py fails if Keras prints the line anyway.

    Args:
        run: the `run.json` content that `RunProgress` keeps up to date.
    """

    def __init__(self, run):
        super().__init__()
        self.run = run
        self.show_epochs = False

    def set_params(self, params):
        self.show_epochs = bool(params.get("verbose"))
        super().set_params({**params, "epochs": 1})

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if self.show_epochs:
            minutes = self.run["train_seconds"] / 60
            limit = self.run["settings"]["time_limit_minutes"]
            message = f"Epoch {epoch + 1} ({minutes:.1f} of {limit:g} minutes trained)"
            # Where Keras's bar writes its lines.
            if keras.config.is_interactive_logging_enabled():
                print(message, flush=True)
            else:
                logging.info(message)


class EpochNumber(keras.callbacks.Callback):
    """Sets `variable` to the epoch number as each epoch begins: the
    training dataset orders its batches by it
    (`make_translation_dataset(epoch=variable)`), so a resumed run sees the
    batches an uninterrupted one would."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


def trim_history(out, epoch):
    """Keeps the header and the rows of epochs before `epoch` in the
    history of the RUN_DIR `out` (if it has one): a run resumed at `epoch`
    trains the later ones again (a kill can come between an epoch's row and
    its backup), and the history keeps one row per epoch."""
    path = os.path.join(out, HISTORY_FILE)
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [
        row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) < epoch
    ]
    if len(kept) < len(rows):
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        write_text_atomically(path, text.getvalue())
