"""The RUN_DIR layout: this module owns it. A RUN_DIR is the folder that one
training run (`stageshow train --out RUN_DIR`, `train_translation_run`)
fills, and that `Translator.load`, `stageshow translate`, `evaluate` and
`export` read:

    RUN_DIR/
      run.json              settings, data description, the pace a
                            time-limited run timed (`training/pace.py`),
                            progress (epochs, seconds, best validation
                            loss), status
      source_tokenizer/     SentencePiece model + tokenizer.json
      target_tokenizer/     (a copy of the source one when shared)
      model.keras           the best model so far on validation loss (with
                            `average_last`, at the end: an average of
                            epochs instead, when its loss is lower)
      epochs/               with `average_last=N`: the epochs' models kept
                            for averaging (`LastEpochCheckpoints`)
      history.csv           one row per epoch (Keras CSVLogger)
      logs/                 TensorBoard
      backup/               `StepBackup` state while training
      lock                  the pid of the process training it, meanwhile
      summary.json          `stageshow demo`'s results (demo runs only)

Every other module names these files through the constants below and reads
or writes `run.json`, the lock and the model through the functions here.
Only the standard library and `keras_stageshow.files` are imported (Keras
when a model is loaded), so anything may import this module.
"""

import os
import zipfile

from keras_stageshow.files import read_json
from keras_stageshow.files import write_json_atomically

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
SOURCE_TOKENIZER_DIR = "source_tokenizer"
TARGET_TOKENIZER_DIR = "target_tokenizer"
EPOCHS_DIR = "epochs"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
LOCK_FILE = "lock"
SUMMARY_FILE = "summary.json"


def is_run_dir(path):
    """Whether `path` is a RUN_DIR (a folder with a `run.json`)."""
    return os.path.isfile(os.path.join(path, RUN_FILE))


def read_run(path):
    """The `run.json` of a RUN_DIR, with a clear error if it is not one."""
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"RUN_DIR {str(path)!r} does not exist. Pass the folder that "
            "`stageshow train --out RUN_DIR` wrote."
        )
    if not is_run_dir(path):
        raise FileNotFoundError(
            f"{str(path)!r} is not a training run: it has no {RUN_FILE}. Pass "
            "the folder that `stageshow train --out RUN_DIR` wrote."
        )
    return read_json(os.path.join(path, RUN_FILE), "Run file")


def write_run(path, run):
    """Writes `run` (a dict) as the `run.json` of the RUN_DIR `path`,
    atomically."""
    write_json_atomically(os.path.join(path, RUN_FILE), run)


def new_run(settings, data_description=""):
    """The `run.json` content of a run that has not trained yet."""
    return {
        "status": "training",
        "settings": settings,
        "data": data_description,
        "epochs_done": 0,
        "train_seconds": 0.0,
        "best_val_loss": None,
        "best_epoch": None,
    }


def load_model(path):
    """`keras.saving.load_model(path, safe_mode=True)` with clear errors for
    a missing or damaged file. The model's classes must be registered with
    Keras (their module imported) before."""
    import keras

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Model file {path!r} does not exist. A run has one once its "
            "first epoch is done; pass a RUN_DIR or a .keras file."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Model file {path!r} is not a .keras archive (it is damaged or "
            "truncated). Retrain, or restore it from a copy."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise ValueError(
            f"Model file {path!r} could not be loaded: {type(error).__name__}: "
            f"{error}. The file may be damaged, or come from another version "
            "of keras_stageshow."
        ) from error


class RunLock:
    """Only one process trains a RUN_DIR at a time: `RUN_DIR/lock` holds
    its pid while it does; a lock left by a killed process is taken over.

    Example:
    >>> with RunLock("runs/m30k"):
    ...     ...  # read run.json, train, write run.json
    """

    def __init__(self, path):
        self.path = os.path.join(path, LOCK_FILE)

    def __enter__(self):
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid and _alive(pid):
                    raise RuntimeError(
                        f"Another process (pid {pid}) is training "
                        f"{os.path.dirname(self.path)}. Wait for it, or stop it "
                        "and run this command again to resume."
                    ) from None
                os.remove(self.path)  # left by a killed process
                continue
            with os.fdopen(handle, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise RuntimeError(f"Could not take the lock {self.path}.")

    def __exit__(self, *exc):
        if os.path.exists(self.path):
            os.remove(self.path)


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()
