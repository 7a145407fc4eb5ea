"""The training recipe: the settings a run is made with, their defaults
(written once, here), and how a saved run's settings are completed and
checked when it is resumed. `stageshow train`'s flags read the defaults
from here.
"""

from keras_stageshow.layers.utils import is_int
from keras_stageshow.training.precision import resolve_dtype_policy

# The defaults are the recipe of benchmarks/multi30k.py, chosen on Multi30k's
# val split only (benchmarks/README.md, section 9). In 15-minute trials on
# two CPU cores, the paper's dropout 0.1 with ~2048-token batches reached a
# far lower validation loss than dropout 0.3 with 4096-token batches and than
# the 4 + 4, d_model 128 "Transformer-tiny" of Wu et al. (2021): those need
# more updates than 45 minutes allow. In 45-minute trials, learning rate
# scale 0.7 (peak 1.8e-3) beat 0.4 (peak 1.0e-3) with dropout 0.1, and
# dropout 0.2, scale 1.0 and a cooldown over the last 20% of the steps did
# not pay (about 23 epochs there); dropout 0.2 pays in runs that afford
# more epochs (`dropout_rate_for_budget`).
# bfloat16 where the CPU has it ("auto") gives 1.4x more updates; epochs
# are averaged when that lowers the validation loss.
MODEL_SETTINGS = {
    "num_layers": 3,
    "d_model": 256,
    "num_heads": 8,
    "d_ff": 512,
    # "auto": by the epochs the run's budget affords
    # (`dropout_rate_for_budget`), fixed when the run starts.
    "dropout_rate": "auto",
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
    # The epoch limit of a run without a time limit. A run given
    # `time_limit_minutes` and no `epochs` has no epoch limit (None): its
    # clock and `patience` end it (`new_run_settings`).
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
    # Stop once this many epochs in a row have not lowered the best
    # validation loss (0: never). The model kept is chosen around the best
    # epoch anyway (`average_last`); the epochs after it only spend the
    # budget. In the Multi30k runs of benchmarks/README.md (section 9), a
    # new best never came more than 2 epochs after the one before it.
    "patience": 5,
    "backup_every_steps": 200,
    "average_last": 5,
    # The last share of the run's steps over which the learning rate falls
    # linearly to zero (`training/cooldown.py`); 0 keeps the paper's
    # schedule to the end.
    "cooldown_fraction": 0.0,
}
DEFAULT_SETTINGS = {**MODEL_SETTINGS, **TOKENIZER_SETTINGS, **TRAINING_SETTINGS}
# What a run made before a setting existed did, so that an older RUN_DIR
# resumes with the recipe it began with, whatever today's defaults are.
SETTINGS_BEFORE_THEY_EXISTED = {
    "attention_dropout_rate": 0.0,
    "bounded_shapes": False,
    "dtype_policy": "float32",
    "average_last": 0,
    "cooldown_fraction": 0.0,
    "patience": 0,
}
# Settings that may change when a run is resumed (the rest must match).
RESUMABLE_SETTINGS = (
    "epochs", "time_limit_minutes", "patience", "jit_compile", "backup_every_steps",
)
# Dropout by budget (issue 26; benchmarks/README.md, section 9, chosen on
# val). Dropout 0.1 learns fastest but its validation loss bottoms out at
# epochs 16-20, and a run stops itself there (`patience`) however long its
# limit. Dropout 0.2 learns slower and goes on falling (to epoch 46, en ->
# de). Its single epochs pass dropout 0.1's best at epoch 21 (en -> de)
# and 23 (de -> en); the kept (averaged) models were compared only where
# the runs ended (33 epochs and more: dropout 0.2 ahead in both
# directions), so its threshold sits five epochs past the later crossing.
# Dropout 0.15, between them, passed 0.1's best at epoch 16 (en -> de)
# and, given 26 epochs, kept a model 0.042 lower in validation loss than
# 0.1's (+0.51 beam BLEU on val); its threshold sits four epochs past that
# crossing. In minutes all this is a property of the machine (45 minutes
# were 19-25 epochs on one, 27-30 timed on another), so a time-limited
# run times its step when it begins (`training/pace.py`) and takes the
# dropout of the epochs its limit affords at that pace.
SHORT_RUN_DROPOUT_RATE = 0.1
MID_RUN_DROPOUT_RATE = 0.15
MID_RUN_EPOCHS = 20
LONG_RUN_DROPOUT_RATE = 0.2
LONG_RUN_EPOCHS = 28


def affordable_epochs(epochs=None, time_limit_minutes=None, seconds_per_epoch=None):
    """The most epochs a run of at most `epochs` epochs and
    `time_limit_minutes` minutes trains when an epoch takes
    `seconds_per_epoch` seconds (None: no such limit).

    Example:
    >>> affordable_epochs(time_limit_minutes=45, seconds_per_epoch=90.0)
    30
    >>> affordable_epochs(epochs=20, time_limit_minutes=45, seconds_per_epoch=90.0)
    20
    """
    if time_limit_minutes and seconds_per_epoch is None:
        raise ValueError(
            "The epochs a time limit affords depend on the seconds an epoch "
            "takes: pass `seconds_per_epoch` (`training.pace.measure_pace` "
            "times them) with `time_limit_minutes`."
        )
    in_minutes = None
    if time_limit_minutes and seconds_per_epoch > 0:
        in_minutes = int(60 * time_limit_minutes // seconds_per_epoch)
    bounds = [b for b in (epochs, in_minutes) if b is not None]
    return min(bounds) if bounds else None


def dropout_rate_for_budget(epochs=None, time_limit_minutes=None, seconds_per_epoch=None):
    """The recipe's dropout for a run of at most `epochs` epochs and
    `time_limit_minutes` minutes at `seconds_per_epoch` seconds an epoch
    (None: no such limit): `LONG_RUN_DROPOUT_RATE` when that affords at
    least `LONG_RUN_EPOCHS` epochs (`affordable_epochs`),
    `MID_RUN_DROPOUT_RATE` when it affords at least `MID_RUN_EPOCHS`, else
    `SHORT_RUN_DROPOUT_RATE`.

    Example:
    >>> dropout_rate_for_budget(epochs=20)  # `stageshow train`'s default
    0.15
    >>> dropout_rate_for_budget(time_limit_minutes=45, seconds_per_epoch=80.0)
    0.2
    """
    epochs = affordable_epochs(epochs, time_limit_minutes, seconds_per_epoch)
    if epochs is None or epochs >= LONG_RUN_EPOCHS:
        return LONG_RUN_DROPOUT_RATE
    if epochs >= MID_RUN_EPOCHS:
        return MID_RUN_DROPOUT_RATE
    return SHORT_RUN_DROPOUT_RATE


def needs_pace(config):
    """Whether the run with settings `config` must time its step before its
    dropout is fixed: "auto" with a time limit, and no epoch limit that
    settles it alone (`dropout_rate_for_budget`): one that gives the
    shortest runs' dropout does, since a time limit only takes epochs
    away."""
    return (
        config["dropout_rate"] == "auto" and bool(config["time_limit_minutes"])
        and dropout_rate_for_budget(config["epochs"]) != SHORT_RUN_DROPOUT_RATE
    )


def _fix_dropout_by_epochs(config):
    """Resolves an "auto" dropout that the epoch limit settles alone."""
    if config["dropout_rate"] == "auto" and not needs_pace(config):
        config["dropout_rate"] = dropout_rate_for_budget(config["epochs"])


# `fit`'s epochs for a run with no epoch limit: its time limit or its
# patience ends it long before.
NO_EPOCH_LIMIT = 100_000


def epoch_limit(config):
    """The most epochs the run with settings `config` trains."""
    return NO_EPOCH_LIMIT if config["epochs"] is None else config["epochs"]


def check_settings(settings):
    """Refuses unknown setting names, a bad `average_last`, `patience` and
    `cooldown_fraction`."""
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
    patience = settings.get("patience", 0)
    if not is_int(patience) or patience < 0:
        raise ValueError(
            "`patience` must be an int >= 0 (the epochs without a better "
            "validation loss after which the run stops; 0 never stops it); "
            f"received {patience!r}."
        )
    fraction = settings.get("cooldown_fraction", 0.0)
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction < 1.0):
        raise ValueError(
            "`cooldown_fraction` must be a number in [0, 1) (the last share "
            "of the run's steps in which the learning rate falls to zero; 0 "
            f"turns the cooldown off); received {fraction!r}."
        )


def new_run_settings(settings, has_gpu=False):
    """The settings a new run is made with: `DEFAULT_SETTINGS` updated with
    `settings`, with "auto" and None resolved for this run's budget and
    this machine (they are fixed for the run's life). A time-limited
    run's "auto" dropout stays "auto" until the run has timed its step
    (`needs_pace`)."""
    config = {**DEFAULT_SETTINGS, **settings}
    if config["time_limit_minutes"] and "epochs" not in settings:
        # The budget is the time limit: no epoch limit of its own.
        config["epochs"] = None
    _check_epoch_limit(config)
    _fix_dropout_by_epochs(config)
    # "auto": what this machine runs best (bfloat16 on CPUs that have it).
    config["dtype_policy"] = resolve_dtype_policy(
        config["dtype_policy"], has_gpu=has_gpu
    )
    if config["bounded_shapes"] is None:
        config["bounded_shapes"] = bool(config["jit_compile"])
    return config


def settings_of_saved_run(saved):
    """A RUN_DIR's saved settings, completed: a setting the run predates
    gets the value that reproduces what the code of its day did
    (`SETTINGS_BEFORE_THEY_EXISTED`), not today's default."""
    return {**DEFAULT_SETTINGS, **SETTINGS_BEFORE_THEY_EXISTED, **saved}


def resumed_run_settings(saved, settings, out):
    """The settings a saved run resumes with: its own (completed by
    `settings_of_saved_run`), with the `RESUMABLE_SETTINGS` among
    `settings` applied. Any other setting in `settings` that differs from
    the saved one is refused, naming each (`out` is the RUN_DIR, for the
    message)."""
    saved = settings_of_saved_run(saved)
    # "auto" and None ("follow jit_compile") were resolved when the run
    # began, for its budget and on the machine it began on: the saved
    # values stand.
    settings = {
        k: v for k, v in settings.items()
        if (k, v) not in (
            ("dtype_policy", "auto"), ("bounded_shapes", None), ("dropout_rate", "auto")
        )
    }
    if saved["dropout_rate"] == "auto" and "dropout_rate" in settings:
        # Killed before it timed its step: it has not trained, so a dropout
        # given now is taken.
        saved["dropout_rate"] = settings["dropout_rate"]
    if "dtype_policy" in settings:
        settings["dtype_policy"] = resolve_dtype_policy(settings["dtype_policy"])
    changed = {
        k: (saved[k], v)
        for k, v in {**saved, **settings}.items()
        if k not in RESUMABLE_SETTINGS and saved[k] != v
    }
    if changed:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(
            f"{out} holds a run with other settings ({details}). Resume it with "
            "the same settings, or pass a new --out folder."
        )
    saved.update({k: v for k, v in settings.items() if k in RESUMABLE_SETTINGS})
    _check_epoch_limit(saved)
    # Killed before it timed its step and resumed with limits that settle
    # it without one.
    _fix_dropout_by_epochs(saved)
    return saved


def _check_epoch_limit(config):
    epochs = config["epochs"]
    if epochs is None and not config["time_limit_minutes"]:
        raise ValueError(
            "A run needs `epochs` or `time_limit_minutes`: it has neither. "
            "Pass --epochs N or --time-limit-minutes T."
        )
    if epochs is not None and (not is_int(epochs) or epochs < 1):
        raise ValueError(f"`epochs` must be an int >= 1 or None; received {epochs!r}.")
