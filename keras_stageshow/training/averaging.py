"""Checkpoint averaging: the epochs' models kept on disk, and a model whose
weights are their element-wise mean.

`average_checkpoints` averages saved `.keras` models of one architecture
(fairseq's `average_checkpoints.py`, tensor2tensor's `avg_checkpoints`: the
paper's base models average the last 5 checkpoints). `LastEpochCheckpoints`
is the Keras callback that keeps those checkpoints: each epoch's model
saved atomically, and kept while it is one of the last `keep` epochs or one
of the `keep` epochs that end at the best epoch on validation loss (the ones
an early-stopped run would average); the others are deleted once the new
one is safely on disk. `choose_average` is the choice a run makes when it
ends: `train_translation_run(average_last=N)` (`stageshow train
--average-last N`) keeps whichever of the two averages and the best single
epoch has the lowest validation loss.
"""

import os
import re

import keras
import numpy as np

from keras_stageshow.files import save_model_atomically
from keras_stageshow.layers.utils import is_int
from keras_stageshow.run_dir import MODEL_FILE
from keras_stageshow.run_dir import load_model

_CHECKPOINT = re.compile(r"^epoch-(\d+)\.keras$")


def average_checkpoints(paths):
    """Loads `.keras` checkpoints of one model and averages their weights.

    Every variable of `model.weights` is averaged element-wise, in order,
    in float64 and cast back to its dtype; variables that are not floats
    (counters, if a model has any) are the last checkpoint's. The
    checkpoints must have one architecture: the same class, the same
    config (the model's `name` aside) and the same variables (paths below
    the model, shapes and dtypes). They are loaded one at a time with
    `safe_mode=True`, so memory holds two models and one float64 sum, not
    all of them.

    Args:
        paths: a non-empty list of `.keras` files, e.g. the last epochs of
            a run (`RUN_DIR/epochs/epoch-NNN.keras` with `stageshow train
            --average-last N`).

    Returns:
        The last checkpoint's model (compiled as it was saved, its
        optimizer state included) holding the averaged weights.

    Example:
    >>> model = average_checkpoints(
    ...     ["run/epochs/epoch-019.keras", "run/epochs/epoch-020.keras"])
    >>> model.save("averaged.keras")
    """
    # Registers `Transformer` with Keras, so that its checkpoints load.
    import keras_stageshow.models.transformer  # noqa: F401

    paths = _check_paths(paths)
    first = None  # (path, signature) of the first checkpoint
    sums = None
    for path in paths:
        model = load_model(path)
        signature = _signature(model)
        if first is None:
            first = (path, signature)
            sums = [
                np.zeros(shape, "float64") if keras.backend.is_float_dtype(dtype) else None
                for _, shape, dtype in signature["variables"]
            ]
        else:
            _check_same_architecture(first, path, signature)
        for total, variable in zip(sums, model.weights):
            if total is not None:
                total += np.asarray(keras.ops.convert_to_numpy(variable), "float64")
    for total, variable in zip(sums, model.weights):
        if total is not None:
            variable.assign(keras.ops.cast(total / len(paths), variable.dtype))
    return model


class LastEpochCheckpoints(keras.callbacks.Callback):
    """Saves the model at each epoch's end and keeps the last `keep` epochs
    and the `keep` epochs that end at the best one.

    Epoch `n`'s model (1-based, with its optimizer state) is written to
    `directory/epoch-NNN.keras` through a temporary name and a rename, and
    only then are the checkpoints no longer needed deleted: those neither
    among the last `keep` epochs nor among the `keep` epochs ending at the
    epoch with the lowest `monitor` so far, and any checkpoint numbered
    after `n` (left by a run that was killed and resumed from an earlier
    point), and any temporary file a kill left behind. A kill at any moment
    leaves complete checkpoints only. Keras's `ModelCheckpoint` writes in
    place (a kill mid-write leaves a damaged file under the real name) and
    never deletes, hence this callback.

    The epochs ending at the best one are what a run stopped early at its
    best epoch would average: on a run that trains past its best epoch
    (overfits), their average can beat both the last epochs' average and
    the best epoch alone (benchmarks/README.md, section 9).

    Args:
        directory: str, the folder of the checkpoints (created if missing).
        keep: int >= 1, how many epochs each kept window holds.
        monitor: str, the log that says which epoch is best (lowest);
            `"val_loss"` by default. Epochs whose logs lack it are never
            the best.
        best: `(epoch, value)` or None: the best epoch (1-based) and its
            `monitor` value before this callback's first epoch, for a run
            resumed in a new process.

    Example:
    >>> checkpoints = LastEpochCheckpoints("run/epochs", keep=5)
    >>> model.fit(data, epochs=20, validation_data=val, callbacks=[checkpoints])
    >>> last = average_checkpoints(checkpoints.paths())
    >>> around_best = average_checkpoints(checkpoints.best_paths())
    """

    def __init__(self, directory, keep, monitor="val_loss", best=None):
        super().__init__()
        if not is_int(keep) or keep < 1:
            raise ValueError(f"`keep` must be an int >= 1; received {keep!r}.")
        if best is not None and (
            len(best) != 2 or not is_int(best[0]) or best[0] < 1
        ):
            raise ValueError(
                "`best` must be None or (epoch, value) with a 1-based epoch; "
                f"received {best!r}."
            )
        self.directory = os.fspath(directory)
        self.keep = int(keep)
        self.monitor = monitor
        self.best = None if best is None else (int(best[0]), float(best[1]))

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if self.best is not None and self.best[0] >= number:
            # Recorded before a resume from an earlier point: retrained now.
            self.best = None
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value < self.best[1]):
            self.best = (number, float(value))
        save_model_atomically(
            self.model, os.path.join(self.directory, f"epoch-{number:03d}.keras")
        )
        kept = set(self._window(number))
        if self.best is not None:
            kept |= set(self._window(self.best[0]))
        for name in os.listdir(self.directory):
            match = _CHECKPOINT.match(name)
            stale = int(match.group(1)) not in kept if match else name.startswith(".")
            if stale:
                os.remove(os.path.join(self.directory, name))

    def paths(self):
        """The last `keep` checkpoints' paths, oldest epoch first."""
        return [path for _, path in self._checkpoints()][-self.keep:]

    def epochs(self):
        """The last `keep` checkpoints' epoch numbers (1-based), oldest first."""
        return [number for number, _ in self._checkpoints()][-self.keep:]

    def best_paths(self):
        """The paths of the kept checkpoints among the `keep` epochs that end
        at the best one, oldest first (empty before any epoch is best)."""
        return [path for _, path in self._best_checkpoints()]

    def best_epochs(self):
        """Their epoch numbers (1-based), oldest first."""
        return [number for number, _ in self._best_checkpoints()]

    def _window(self, last):
        return range(max(1, last - self.keep + 1), last + 1)

    def _best_checkpoints(self):
        if self.best is None:
            return []
        window = self._window(self.best[0])
        return [(n, path) for n, path in self._checkpoints() if n in window]

    def _checkpoints(self):
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            match = _CHECKPOINT.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.directory, name)))
        return sorted(found)


def best_of_averages(checkpoints, val_data, best_single_val_loss, verbose=0):
    """The lowest validation loss among the best single epoch and the
    averages of `checkpoints`: the last kept epochs and, when they differ,
    the kept epochs that end at the best one.

    The choice a run makes when it ends (`choose_average`, for `stageshow
    train`) and a notebook makes after `model.fit` (notebook 02): each
    average is built and measured on `val_data` once, here.

    Args:
        checkpoints: a `LastEpochCheckpoints` that saw the training.
        val_data: the validation dataset.
        best_single_val_loss: float or None, the best epoch's validation
            loss (None: no epoch was validated; any average wins).
        verbose: print each average's loss when truthy.

    Returns `(chosen, model, losses)`: `chosen` is `"average"`,
    `"average_to_best"` or `"best_single"`; `model` the chosen average
    (None for `"best_single"`, whose model the caller has); `losses` maps
    `"average_val_loss"` and `"average_to_best_val_loss"` to each average's
    loss (None when not built).

    Example:
    >>> chosen, averaged, losses = best_of_averages(checkpoints, val_data, 2.61)
    >>> if averaged is not None:
    ...     model = averaged
    """
    candidates = {"best_single": best_single_val_loss}
    losses = {"average_val_loss": None, "average_to_best_val_loss": None}
    models = {}
    windows = [("average", checkpoints.paths(), checkpoints.epochs())]
    if checkpoints.best_epochs() not in ([], checkpoints.epochs()):
        windows.append(
            ("average_to_best", checkpoints.best_paths(), checkpoints.best_epochs())
        )
    for name, paths, epochs in windows:
        if not paths:
            continue
        models[name] = average_checkpoints(paths)
        loss = float(models[name].evaluate(val_data, verbose=0, return_dict=True)["loss"])
        losses[f"{name}_val_loss"] = candidates[name] = loss
        if verbose:
            print(
                f"Average of epochs {epochs[0]}-{epochs[-1]}: validation loss "
                f"{loss:.4f}."
            )
    chosen = min(
        candidates,
        key=lambda name: float("inf") if candidates[name] is None else candidates[name],
    )
    return chosen, models.get(chosen), losses


def choose_average(out, run, checkpoints, val_data, verbose=0):
    """The choice a run with `average_last` makes when it ends.

    `best_of_averages` against the best single epoch
    (`run["best_val_loss"]`, whose model is already `out/model.keras`); a
    winning average is saved there.

    Args:
        out: the RUN_DIR.
        run: its `run.json` content.
        checkpoints: the run's `LastEpochCheckpoints`.
        val_data: the validation dataset.
        verbose: print each candidate's loss and the choice when truthy.

    Returns the record for `run.json`'s `averaging`, whose `chosen` is
    `"average"`, `"average_to_best"` or `"best_single"`.
    """
    chosen, model, losses = best_of_averages(
        checkpoints, val_data, run["best_val_loss"], verbose
    )
    if model is not None:
        save_model_atomically(model, os.path.join(out, MODEL_FILE))
    if verbose:
        best = run["best_val_loss"]
        print(
            f"Best single epoch ({run['best_epoch']}): validation loss "
            f"{'none' if best is None else f'{best:.4f}'}. The run's model is "
            f"the {chosen.replace('_', ' ')}."
        )
    return {
        "average_last": checkpoints.keep,
        "epochs": checkpoints.epochs(),
        "average_val_loss": losses["average_val_loss"],
        "best_single_epoch": run["best_epoch"],
        "best_single_val_loss": run["best_val_loss"],
        "average_to_best_epochs": checkpoints.best_epochs(),
        "average_to_best_val_loss": losses["average_to_best_val_loss"],
        "chosen": chosen,
    }


def _check_paths(paths):
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError(
            "`paths` must be a list of .keras files; received one path. "
            f"Pass a list: [{os.fspath(paths)!r}, ...]."
        )
    try:
        paths = [os.fspath(path) for path in paths]
    except TypeError:
        raise TypeError(
            "`paths` must be a list of .keras file paths; received "
            f"{paths!r}."
        ) from None
    if not paths:
        raise ValueError(
            "`paths` is empty: there are no checkpoints to average. Pass at "
            "least one .keras file (a run keeps its last epochs with "
            "`stageshow train --average-last N`)."
        )
    for i, path in enumerate(paths):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"`paths[{i}]` {path!r} does not exist (or is not a file). "
                "Pass the .keras checkpoints to average."
            )
    return paths


def _signature(model):
    """What must be equal for two checkpoints to be averaged."""
    config = model.get_config()
    config.pop("name", None)
    prefix = model.name + "/"
    return {
        "class": type(model).__name__,
        "config": config,
        # Paths below the model: two models of one architecture made in
        # one process are named `transformer` and `transformer_1`.
        "variables": [
            (
                v.path[len(prefix):] if v.path.startswith(prefix) else v.path,
                tuple(v.shape),
                keras.backend.standardize_dtype(v.dtype),
            )
            for v in model.weights
        ],
    }


def _check_same_architecture(first, path, signature):
    first_path, expected = first
    fix = "Average only checkpoints of one model, e.g. the epochs of one run."
    if signature["class"] != expected["class"]:
        raise ValueError(
            f"Checkpoint {path!r} is a {signature['class']}, but {first_path!r} "
            f"is a {expected['class']}. {fix}"
        )
    keys = sorted(set(expected["config"]) | set(signature["config"]))
    for key in keys:
        a, b = expected["config"].get(key), signature["config"].get(key)
        if a != b:
            raise ValueError(
                f"Checkpoint {path!r} has another architecture than "
                f"{first_path!r}: its {key!r} is {b!r}, not {a!r}. {fix}"
            )
    ours, theirs = expected["variables"], signature["variables"]
    for (name, shape, dtype), (other, other_shape, other_dtype) in zip(ours, theirs):
        if (name, shape, dtype) != (other, other_shape, other_dtype):
            raise ValueError(
                f"Checkpoint {path!r} does not match {first_path!r} at variable "
                f"{other!r} {other_shape} {other_dtype} (expected {name!r} "
                f"{shape} {dtype}). {fix}"
            )
    if len(ours) != len(theirs):
        missing = (ours if len(ours) > len(theirs) else theirs)[min(len(ours), len(theirs))]
        raise ValueError(
            f"Checkpoint {path!r} has {len(theirs)} variables but {first_path!r} "
            f"has {len(ours)} (first unmatched: {missing[0]!r}). {fix}"
        )
