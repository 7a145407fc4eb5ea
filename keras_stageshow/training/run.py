"""A training run: a folder (RUN_DIR) that holds everything one training makes.

    RUN_DIR/
      run.json              settings, data description, progress (epochs,
                            seconds, best validation loss), status
      source_tokenizer/     SentencePiece model + tokenizer.json
      target_tokenizer/     (a copy of the source one when shared)
      model.keras           the best model so far on validation loss (with
                            `average_last`, at the end: an average of
                            epochs instead, when its loss is lower)
      epochs/               with `average_last=N`: the last N epochs' models
                            and the N ending at the best epoch
                            (`LastEpochCheckpoints`), kept after training
      history.csv           one row per epoch (Keras CSVLogger)
      logs/                 TensorBoard
      backup/               `StepBackup` state while training

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
does it again when resumed. Every file this module writes itself goes
through a temporary name and a rename.
"""

import os
import shutil
import time

import keras
import tensorflow as tf

from keras_stageshow.files import read_json
from keras_stageshow.files import save_model_atomically
from keras_stageshow.files import write_json_atomically
from keras_stageshow.files import write_text_atomically
from keras_stageshow.layers.utils import is_int
from keras_stageshow.training.precision import resolve_dtype_policy

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
EPOCHS_DIR = "epochs"

# The defaults are the recipe of benchmarks/multi30k.py, chosen on Multi30k's
# val split only (benchmarks/README.md, section 9). In 15-minute trials on
# two CPU cores, the paper's dropout 0.1 with ~2048-token batches reached a
# far lower validation loss than dropout 0.3 with 4096-token batches and than
# the 4 + 4, d_model 128 "Transformer-tiny" of Wu et al. (2021): those need
# more updates than 45 minutes allow. In 45-minute trials, learning rate
# scale 0.7 (peak 1.8e-3) beat 0.4 (peak 1.0e-3) with dropout 0.1, and
# dropout 0.2 did not pay. bfloat16 where the CPU has it ("auto") gives 1.4x
# more updates; epochs are averaged when that lowers the validation loss.
MODEL_SETTINGS = {
    "num_layers": 3,
    "d_model": 256,
    "num_heads": 8,
    "d_ff": 512,
    "dropout_rate": 0.1,
    "attention_dropout_rate": 0.0,
    "max_length": 128,
}
TOKENIZER_SETTINGS = {
    "vocabulary_size": 6000,
    "shared_vocabulary": True,
    "lowercase": False,
    "strip_accents": False,
}
TRAINING_SETTINGS = {
    "epochs": 20,
    "tokens_per_batch": 2048,
    "warmup_steps": 600,
    "learning_rate_scale": 0.7,
    "label_smoothing": 0.1,
    "jit_compile": False,
    # Batches of at most 16 shapes (`make_translation_dataset`); None
    # follows `jit_compile` (XLA compiles a program per shape). Fixed when
    # the run starts, so that a resumed epoch has the batches it began with.
    "bounded_shapes": None,
    # "float32", "mixed_bfloat16", "mixed_float16", or "auto": bfloat16 on
    # CPUs with AVX-512 BF16 or AMX (`training/precision.py`). Fixed when
    # the run starts.
    "dtype_policy": "auto",
    "seed": 0,
    "time_limit_minutes": None,
    "backup_every_steps": 200,
    "average_last": 5,
}
DEFAULT_SETTINGS = {**MODEL_SETTINGS, **TOKENIZER_SETTINGS, **TRAINING_SETTINGS}
# What a run made before a setting existed did, so that an older RUN_DIR
# resumes with the recipe it began with, whatever today's defaults are.
SETTINGS_BEFORE_THEY_EXISTED = {
    "attention_dropout_rate": 0.0,
    "bounded_shapes": False,
    "dtype_policy": "float32",
    "average_last": 0,
}
# Settings that may change when a run is resumed (the rest must match).
RESUMABLE_SETTINGS = (
    "epochs", "time_limit_minutes", "jit_compile", "backup_every_steps",
)


def is_run_dir(path):
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
        **settings: any of `DEFAULT_SETTINGS` (model size, tokenizer,
            training recipe). `average_last=N` (N >= 1, 5 by default; 0
            turns it off) keeps the last N epochs' models and the N ending
            at the best epoch in `out/epochs/` and, when training ends,
            keeps as the run's model the average of either or the best
            single epoch, whichever has the lowest validation loss.

    Returns the run's `run.json` content after training.

    Example:
    >>> run = train_translation_run("runs/m30k", train, val, epochs=20,
    ...                             average_last=5)
    >>> run["averaging"]["chosen"]  # "average", "average_to_best", "best_single"
    """
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise TypeError(
            f"Unknown training settings {unknown}; known: {sorted(DEFAULT_SETTINGS)}."
        )
    average_last = settings.get("average_last", 0)
    if not is_int(average_last) or average_last < 0:
        raise ValueError(
            "`average_last` must be an int >= 0 (the last epochs to average; "
            f"0 turns averaging off); received {average_last!r}."
        )
    os.makedirs(out, exist_ok=True)
    # One process per RUN_DIR, from reading run.json to the final clean-up.
    with _RunLock(out):
        return _train_locked(
            out, train_pairs, val_pairs, data_description, verbose, callbacks,
            settings,
        )


def _train_locked(
    out, train_pairs, val_pairs, data_description, verbose, callbacks, settings
):
    from keras_stageshow.datasets.pipeline import make_translation_dataset
    from keras_stageshow.models.transformer import Transformer
    from keras_stageshow.tokenizers import SubwordTokenizer
    from keras_stageshow.training.averaging import LastEpochCheckpoints
    from keras_stageshow.training.backup import StepBackup

    run_path = os.path.join(out, RUN_FILE)
    source_dir = os.path.join(out, "source_tokenizer")
    target_dir = os.path.join(out, "target_tokenizer")
    if is_run_dir(out):
        run = read_run(out)
        run["settings"] = settings_of_saved_run(run["settings"])
        # "auto" and None ("follow jit_compile") were resolved when the run
        # began, on the machine it began on: the saved values stand.
        settings = {
            k: v for k, v in settings.items()
            if (k, v) not in (("dtype_policy", "auto"), ("bounded_shapes", None))
        }
        if "dtype_policy" in settings:
            settings["dtype_policy"] = resolve_dtype_policy(settings["dtype_policy"])
        _check_resumable(run["settings"], {**run["settings"], **settings}, out)
        run["settings"].update(
            {k: v for k, v in settings.items() if k in RESUMABLE_SETTINGS}
        )
        config = run["settings"]
        source_tokenizer = SubwordTokenizer.load(source_dir)
        target_tokenizer = SubwordTokenizer.load(target_dir)
        if verbose:
            print(f"Resuming the run in {out} from epoch {run['epochs_done']}.")
    else:
        config = {**DEFAULT_SETTINGS, **settings}
        # "auto": what this machine runs best (bfloat16 on CPUs that have it).
        config["dtype_policy"] = resolve_dtype_policy(
            config["dtype_policy"],
            has_gpu=bool(tf.config.list_physical_devices("GPU")),
        )
        if config["bounded_shapes"] is None:
            config["bounded_shapes"] = bool(config["jit_compile"])
        source_tokenizer, target_tokenizer = _train_tokenizers(
            train_pairs, config
        )
        source_tokenizer.save(source_dir)
        target_tokenizer.save(target_dir)
        run = {
            "status": "training",
            "settings": config,
            "data": data_description,
            "epochs_done": 0,
            "train_seconds": 0.0,
            "best_val_loss": None,
            "best_epoch": None,
        }
        write_json_atomically(run_path, run)

    shared = config["shared_vocabulary"]
    keras.utils.set_random_seed(config["seed"])
    common = dict(
        source_tokenizer=source_tokenizer,
        target_tokenizer=target_tokenizer,
        max_length=config["max_length"],
        tokens_per_batch=config["tokens_per_batch"],
        bounded_shapes=bool(config.get("bounded_shapes")),
    )
    # Each epoch's batch order is a permutation keyed by the epoch number
    # (set by `_EpochNumber` as the epoch begins), so a resumed run sees
    # the batches an uninterrupted one would.
    with tf.device("CPU:0"):  # read by the tf.data pipeline, on the host
        epoch_number = tf.Variable(0, dtype="int64", trainable=False)
    train_data, train_stats = make_translation_dataset(
        *train_pairs, seed=config["seed"], epoch=epoch_number, return_stats=True,
        **common,
    )
    # Validation is a small share of the time but, under XLA, compiles a
    # program per shape as training does: fewer shapes, a little more padding.
    val_data, val_stats = make_translation_dataset(
        *val_pairs, shuffle=False, return_stats=True, max_shapes=4, **common
    )
    run["train_data"], run["val_data"] = train_stats, val_stats

    model = Transformer(
        source_tokenizer.vocabulary_size(),
        target_tokenizer.vocabulary_size(),
        share_embeddings=shared,
        dtype=config.get("dtype_policy", "float32"),
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
    run["parameters"] = int(model.count_params())

    average_last = config.get("average_last", 0)
    # Written before `RunProgress` records the epoch in run.json: an epoch
    # that run.json calls done has its checkpoint.
    epoch_checkpoints = (
        [LastEpochCheckpoints(
            os.path.join(out, EPOCHS_DIR), average_last,
            best=run["best_epoch"] and (run["best_epoch"], run["best_val_loss"]),
        )]
        if average_last else []
    )
    backup_dir = os.path.join(out, "backup")
    if run["status"] != "complete" and run["epochs_done"] < config["epochs"]:
        backup = StepBackup(backup_dir, config.get("backup_every_steps", 200))
        if run["epochs_done"] and backup.state() is None:
            raise ValueError(
                f"{out} has {run['epochs_done']} finished epochs but no backup/ "
                "folder to resume them from, so resuming would silently start "
                "over. Train into a new --out folder (the best model so far is "
                f"{os.path.join(out, MODEL_FILE)})."
            )
        epoch, batches_done = backup.restore(model)
        # Rows of epochs after the backup (a kill can come between the two
        # writes) are trained again: keep one row per epoch.
        _trim_history(os.path.join(out, "history.csv"), epoch)
        run["status"] = "training"
        write_json_atomically(run_path, run)
        progress = RunProgress(out, run)

        def fit(data, first_epoch, last_epoch, batch_offset=0):
            backup.batch_offset = batch_offset
            model.fit(
                data,
                validation_data=val_data,
                initial_epoch=first_epoch,
                epochs=last_epoch,
                callbacks=[
                    _EpochNumber(epoch_number),
                    *epoch_checkpoints,
                    progress,
                    keras.callbacks.CSVLogger(
                        os.path.join(out, "history.csv"), append=True
                    ),
                    keras.callbacks.TensorBoard(os.path.join(out, "logs")),
                    backup,  # last: an epoch's backup follows its records
                    *callbacks,
                ],
                shuffle=False,  # the dataset orders its batches every epoch
                verbose=verbose,
            )

        if batches_done:
            # The rest of the interrupted epoch: its batches in the same
            # order, without those already trained on.
            rest = make_translation_dataset(
                *train_pairs, seed=config["seed"], epoch=epoch,
                skip_batches=batches_done, **common,
            )
            if verbose:
                print(
                    f"Resuming epoch {epoch + 1} after its first "
                    f"{batches_done} batches."
                )
            fit(rest, epoch, epoch + 1, batch_offset=batches_done)
            epoch += 1
        if epoch < config["epochs"] and not run.get("stopped_by_time_limit"):
            fit(train_data, epoch, config["epochs"])
    elif verbose and config["epochs"] > run["epochs_done"]:
        print(
            f"The run in {out} is complete ({run['epochs_done']} epochs) and "
            "final; to train longer, train into a new --out folder."
        )
    run = read_run(out)
    if run["status"] != "complete":
        if epoch_checkpoints:
            # Written with the status in one step: a run killed before it
            # averages again (the same checkpoints, the same choice).
            run["averaging"] = _choose_average(
                out, run, epoch_checkpoints[0], val_data, verbose
            )
        # Marked complete before the backup is deleted, so no moment exists
        # where the run is unfinished and has no backup.
        run["status"] = "complete"
        write_json_atomically(run_path, run)
    if os.path.isdir(backup_dir):
        shutil.rmtree(backup_dir)
    return run


def _choose_average(out, run, checkpoints, val_data, verbose):
    """Averages the last kept epochs and, when they differ, the kept epochs
    that end at the best one; measures each average's validation loss and
    saves the lowest as the run's model if it beats the best single epoch's
    (`run["best_val_loss"]`, whose model is `model.keras`). Returns the
    record for `run.json`."""
    from keras_stageshow.training.averaging import average_checkpoints

    record = {
        "average_last": checkpoints.keep,
        "epochs": checkpoints.epochs(),
        "average_val_loss": None,
        "best_single_epoch": run["best_epoch"],
        "best_single_val_loss": run["best_val_loss"],
        "average_to_best_epochs": checkpoints.best_epochs(),
        "average_to_best_val_loss": None,
    }
    candidates = {"best_single": run["best_val_loss"]}
    models = {}
    windows = [("average", checkpoints.paths(), record["epochs"])]
    if record["average_to_best_epochs"] not in ([], record["epochs"]):
        windows.append(
            ("average_to_best", checkpoints.best_paths(), record["average_to_best_epochs"])
        )
    for name, paths, epochs in windows:
        if not paths:
            continue
        models[name] = average_checkpoints(paths)
        loss = float(models[name].evaluate(val_data, verbose=0, return_dict=True)["loss"])
        record[f"{name}_val_loss"] = candidates[name] = loss
        if verbose:
            print(
                f"Average of epochs {epochs[0]}-{epochs[-1]}: validation loss "
                f"{loss:.4f}."
            )
    chosen = min(
        candidates,
        key=lambda name: float("inf") if candidates[name] is None else candidates[name],
    )
    if chosen != "best_single":
        save_model_atomically(models[chosen], os.path.join(out, MODEL_FILE))
    if verbose:
        best = candidates["best_single"]
        print(
            f"Best single epoch ({run['best_epoch']}): validation loss "
            f"{'none' if best is None else f'{best:.4f}'}. The run's model is "
            f"the {chosen.replace('_', ' ')}."
        )
    return {**record, "chosen": chosen}


def _trim_history(path, epoch):
    """Keeps the header and the rows of epochs before `epoch` in the
    CSVLogger file at `path` (if there is one)."""
    import csv
    import io

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


class _EpochNumber(keras.callbacks.Callback):
    """Sets the variable that orders the training dataset's batches."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class RunProgress(keras.callbacks.Callback):
    """Keeps `run.json` up to date, saves the best model on validation loss
    (atomically), and stops before `time_limit_minutes` would be passed.

    The best validation loss lives in `run.json`, so a resumed run keeps
    comparing against the best of the whole run, not of its last part."""

    def __init__(self, out, run):
        super().__init__()
        self.out = out
        self.run = run

    def on_train_begin(self, logs=None):
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        run = self.run
        seconds = time.monotonic() - self._epoch_start
        run["train_seconds"] = round(run["train_seconds"] + seconds, 1)
        run["epochs_done"] = epoch + 1
        run["steps_done"] = int(self.model.optimizer.iterations.numpy())
        val_loss = logs.get("val_loss")
        if val_loss is not None and (
            run["best_val_loss"] is None or val_loss < run["best_val_loss"]
        ):
            save_model_atomically(self.model, os.path.join(self.out, MODEL_FILE))
            run["best_val_loss"] = float(val_loss)
            run["best_epoch"] = epoch + 1
        limit = run["settings"].get("time_limit_minutes")
        if limit and run["train_seconds"] + seconds > 60 * limit:
            # The next epoch would end past the limit.
            self.model.stop_training = True
            run["stopped_by_time_limit"] = True
        write_json_atomically(os.path.join(self.out, RUN_FILE), run)



class _RunLock:
    """Only one process trains a RUN_DIR at a time (`RUN_DIR/lock` holds its
    pid; a lock left by a killed process is taken over)."""

    def __init__(self, out):
        self.path = os.path.join(out, "lock")

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


def _train_tokenizers(train_pairs, config):
    from keras_stageshow.tokenizers import SubwordTokenizer

    options = dict(
        vocabulary_size=config["vocabulary_size"],
        lowercase=config["lowercase"],
        strip_accents=config["strip_accents"],
    )
    source_texts, target_texts = train_pairs
    if config["shared_vocabulary"]:
        shared = SubwordTokenizer.train([source_texts, target_texts], **options)
        return shared, shared
    return (
        SubwordTokenizer.train(source_texts, **options),
        SubwordTokenizer.train(target_texts, **options),
    )


def settings_of_saved_run(saved):
    """A RUN_DIR's saved settings, completed: a setting the run predates
    gets the value that reproduces what the code of its day did
    (`SETTINGS_BEFORE_THEY_EXISTED`), not today's default."""
    return {**DEFAULT_SETTINGS, **SETTINGS_BEFORE_THEY_EXISTED, **saved}


def _check_resumable(saved, requested, out):
    changed = {
        k: (saved[k], v)
        for k, v in requested.items()
        if k not in RESUMABLE_SETTINGS and saved[k] != v
    }
    if changed:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(
            f"{out} holds a run with other settings ({details}). Resume it with "
            "the same settings, or pass a new --out folder."
        )
