"""A training backup that resumes to the step, not to the epoch, with the
dropout masks an uninterrupted run would draw."""

import os

import keras
import numpy as np

from keras_stageshow.files import read_json
from keras_stageshow.files import write_json_atomically

STATE_FILE = "state.json"


class StepBackup(keras.callbacks.Callback):
    """Backs up the model and optimizer every `every_steps` steps and at
    each epoch's end, so that a killed run resumes where it was.

    Keras's `BackupAndRestore(save_freq=N)` also saves mid-epoch, but on
    restore it only knows the epoch: the interrupted epoch starts over from
    its first batch with the mid-epoch weights, so the resumed run trains
    more steps than an uninterrupted one. This backup also records how many
    batches of the epoch were done; `restore` returns that number, and the
    caller trains the rest of that epoch on the batches not yet seen (see
    `train_translation_run`, whose dataset visits the batches of each epoch
    in an order fixed by the epoch number).

    It also records the state of the model's random-number generators
    (`random_state_variables`: dropout's), so the resumed run draws the
    dropout masks the uninterrupted one would have, and ends with the same
    weights. (On PyTorch, Keras's dropout with no seed draws from torch's
    own generator, which is not recorded.)

    Each backup is written to a new file, then `state.json` (atomic) is
    switched to it, then the previous file is deleted: a kill at any moment
    leaves a state that names a complete file.

    Args:
        directory: str, the backup folder.
        every_steps: int, steps between backups (and one at each epoch end).
        batch_offset: int, batches of the first epoch done before this fit
            (what `restore` returned), so the recorded count is the epoch's.

    Example:
    >>> backup = StepBackup("run/backup", every_steps=200)
    >>> epoch, batches_done = backup.restore(model)   # (0, 0) the first time
    """

    def __init__(self, directory, every_steps=200, batch_offset=0):
        super().__init__()
        if not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(
                f"`every_steps` must be an int >= 1; received {every_steps!r}."
            )
        self.directory = os.fspath(directory)
        self.every_steps = every_steps
        self.batch_offset = batch_offset
        self._epoch = 0

    def restore(self, model):
        """Loads the last backup into `model` (built and compiled) and
        returns `(epoch, batches_done)`; `(0, 0)` when there is none."""
        state = self.state()
        if state is None:
            return 0, 0
        path = os.path.join(self.directory, state["weights"])
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"The backup state in {self.directory!r} names {state['weights']!r}, "
                "which is missing; the backup is damaged. Delete the backup "
                "folder to start the run over."
            )
        # A backup written before the random state was recorded resumes
        # with the generators' initial state, as such runs always did.
        saved = state.get("random_state")
        variables = random_state_variables(model)
        if saved is not None:
            # Checked before anything is loaded: a refused backup leaves the
            # model as it was.
            if len(saved) != len(variables):
                raise ValueError(
                    f"The backup in {self.directory!r} has the state of "
                    f"{len(saved)} random-number generators; the model has "
                    f"{len(variables)}. It is another model's backup: resume "
                    "with the settings the run began with, or delete the "
                    "backup folder to start the run over."
                )
            saved = [np.asarray(value) for value in saved]
            for variable, value in zip(variables, saved):
                if value.shape != tuple(variable.shape) or value.dtype.kind not in "iu":
                    raise ValueError(
                        f"The backup state in {self.directory!r} holds a "
                        f"random state {value.tolist()!r} where a generator "
                        f"of shape {tuple(variable.shape)} was expected; the "
                        "backup is damaged. Delete the backup folder to "
                        "start the run over."
                    )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
        for variable, value in zip(variables, saved or ()):
            variable.assign(value.astype(variable.dtype))
        return int(state["epoch"]), int(state["batches_done"])

    def state(self):
        path = os.path.join(self.directory, STATE_FILE)
        if not os.path.isfile(path):
            return None
        return read_json(path, "Backup state")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1
        if batch + 1 == self.params.get("steps"):
            # The epoch's last batch: the backup at the epoch's end follows
            # validation. A state saying "all batches done, epoch not ended"
            # would leave nothing to resume.
            return
        if done % self.every_steps == 0:
            self._save(self._epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self.batch_offset = 0
        self._save(epoch + 1, 0)

    def _save(self, epoch, batches_done):
        os.makedirs(self.directory, exist_ok=True)
        previous = self.state()
        name = f"backup-{epoch}-{batches_done}.weights.h5"
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".{name}.tmp.weights.h5")
        self.model.save_weights(tmp, overwrite=True)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        write_json_atomically(
            os.path.join(self.directory, STATE_FILE),
            {
                "epoch": epoch, "batches_done": batches_done, "weights": name,
                "random_state": [
                    np.asarray(variable).tolist()
                    for variable in random_state_variables(self.model)
                ],
            },
        )
        if previous and previous["weights"] != name:
            stale = os.path.join(self.directory, previous["weights"])
            if os.path.exists(stale):
                os.remove(stale)


def random_state_variables(model):
    """The variables of `model`'s random-number generators (its
    `keras.random.SeedGenerator`s: dropout's), in a fixed order.

    Keras's `save_weights` leaves them out (a layer saves its weights, not
    its seed generators' state), and Keras has no public list of a model's
    seed generators. `Model.variables` is documented as `weights` plus the
    seed generators' state (metrics excluded), so the generators' are what
    is left of it after `weights`; leaving out `metrics_variables` too is a
    guard. tests/test_dropout.py fails, on every backend, if that stops
    holding. The order is the model's layers' (fixed by its code and
    settings, so the same in the process that resumes), not the variables'
    names, which count generators per process; the model must be built.
    """
    known = {id(v) for v in model.weights} | {id(v) for v in model.metrics_variables}
    return [v for v in model.variables if id(v) not in known]
