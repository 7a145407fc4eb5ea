"""The flags of every `stageshow` command (`build_parser`) and the checked
numeric types they use.

Every numeric flag is checked by argparse, so a value out of range stops
the command before any work, with `argument --epochs: must be an int >= 1;
received '-1'` (exit code 2). A flag whose default is `argparse.SUPPRESS`
is left out of the parsed arguments unless given: the library function the
command calls has the default (a resumed run keeps its saved settings).
The generation flags' defaults are `generation_options.DEFAULTS`.
"""

import argparse
import math

from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.generation_options import STRATEGIES


def build_parser():
    """The `stageshow` argument parser, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stageshow",
        description="keras_stageshow: the Transformer as a stage show.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small translator on a generated language with another "
        "word order (offline, a few minutes) and show what it learned",
    )
    demo.add_argument(
        "--examples", type=demo_examples, default=argparse.SUPPRESS,
        help="training pairs (at least 100)",
    )
    demo.add_argument("--epochs", type=positive_int, default=argparse.SUPPRESS)
    demo.add_argument("--seed", type=non_negative_int, default=argparse.SUPPRESS)
    demo.add_argument(
        "--out", default=argparse.SUPPRESS, help="folder for the saved run"
    )
    _add_train_parser(commands)
    _add_translate_parsers(commands)
    _add_export_parser(commands)
    return parser


def _add_generation_flags(parser):
    parser.add_argument("--model", required=True, help="a RUN_DIR")
    parser.add_argument("--strategy", choices=STRATEGIES, default=DEFAULTS.strategy)
    parser.add_argument("--num-beams", type=positive_int, default=DEFAULTS.num_beams)
    parser.add_argument(
        "--length-penalty", type=non_negative_float,
        default=DEFAULTS.length_penalty, help="alpha, for beam",
    )
    parser.add_argument("--top-k", type=positive_int, help="for sample")
    parser.add_argument("--top-p", type=top_p, help="for sample")
    parser.add_argument(
        "--temperature", type=positive_float, default=DEFAULTS.temperature
    )
    parser.add_argument("--seed", type=non_negative_int, help="for sample")
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULTS.batch_size
    )


def _add_translate_parsers(commands):
    translate = commands.add_parser(
        "translate",
        help="translate sentences with a trained RUN_DIR (stdin when no "
        "TEXT is given, one sentence a line)",
    )
    _add_generation_flags(translate)
    translate.add_argument("text", nargs="*", metavar="TEXT")
    translate.add_argument(
        "--plot-attention",
        metavar="OUT.png",
        help="also draw each sentence's attention heatmaps (one sentence: "
        "OUT.png; several: OUT-1.png, OUT-2.png, ...)",
    )
    translate.add_argument(
        "--round", dest="round_index", metavar="ROUND", type=round_index,
        default=argparse.SUPPRESS,
        help="the round (layer) to draw; -1 is the last",
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU of a trained RUN_DIR on a Multi30k split or on your files",
    )
    _add_generation_flags(evaluate)
    evaluate.add_argument("--data-dir", help="local Multi30k folder")
    evaluate.add_argument("--split", default=argparse.SUPPRESS)
    evaluate.add_argument("--source-lang", default=argparse.SUPPRESS)
    evaluate.add_argument("--target-lang", default=argparse.SUPPRESS)
    evaluate.add_argument("--source-file", help="sentences to translate")
    evaluate.add_argument("--reference-file", help="their reference translations")
    evaluate.add_argument("--output", help="write the translations here")


def _add_export_parser(commands):
    export = commands.add_parser(
        "export",
        help="write a RUN_DIR as a SavedModel that TF Serving serves: strings "
        "in, translations out (DIR/<version>/)",
    )
    export.add_argument("--model", required=True, help="a RUN_DIR")
    export.add_argument(
        "--out", required=True, help="the model base path (one folder per version)"
    )
    export.add_argument(
        "--version", type=positive_int,
        help="version folder (default: the next free one)",
    )
    export.add_argument(
        "--num-beams", type=positive_int, default=DEFAULTS.num_beams,
        help="beams of the beam_search signature",
    )
    export.add_argument(
        "--length-penalty", type=non_negative_float,
        default=DEFAULTS.length_penalty,
        help="alpha of the beam_search signature",
    )
    export.add_argument(
        "--max-new-tokens", type=positive_int,
        help="longest translation in tokens (default: source length + 50, "
        "capped at the model's max_length)",
    )
    export.add_argument(
        "--batch-size", type=positive_int, default=DEFAULTS.batch_size,
        help="sentences decoded together inside the graph",
    )
    export.add_argument(
        "--jit-compile", action="store_true",
        help="decode with XLA inside the graph (TF Serving needs "
        "--xla_cpu_compilation_enabled=true on CPU; off by default)",
    )
    export.add_argument(
        "--dtype",
        help="compute dtype of the graph (default: float32, also for a run "
        "trained in mixed precision, so it translates exactly as the "
        "library; mixed_bfloat16 serves batches faster on AVX-512 BF16 CPUs)",
    )


def _add_train_parser(commands):
    from keras_stageshow.training.precision import POLICIES
    from keras_stageshow.training.recipe import DEFAULT_SETTINGS as d
    from keras_stageshow.training.recipe import LONG_RUN_DROPOUT_RATE
    from keras_stageshow.training.recipe import LONG_RUN_EPOCHS
    from keras_stageshow.training.recipe import MID_RUN_DROPOUT_RATE
    from keras_stageshow.training.recipe import MID_RUN_EPOCHS
    from keras_stageshow.training.recipe import SHORT_RUN_DROPOUT_RATE

    train = commands.add_parser(
        "train",
        help="train a translator on Multi30k or your own parallel files; "
        "resumes when run again on the same --out",
    )
    data = train.add_argument_group("data (Multi30k by default)")
    data.add_argument(
        "--data-dir",
        help="local folder with the Multi30k raw files (else they are "
        "downloaded once and cached)",
    )
    data.add_argument("--source-lang", default=argparse.SUPPRESS)
    data.add_argument("--target-lang", default=argparse.SUPPRESS)
    data.add_argument("--source-file", help="your source sentences, one a line")
    data.add_argument("--target-file", help="their translations, line by line")
    data.add_argument("--tsv", help="one file of source<TAB>target lines")
    data.add_argument(
        "--valid-fraction",
        type=fraction,
        default=argparse.SUPPRESS,
        help="share of your own files held out for validation",
    )
    data.add_argument(
        "--max-examples", type=positive_int, help="train on the first N pairs only"
    )
    size = train.add_argument_group("model size")
    def recipe(key, help=""):
        # A recipe flag is set only when given: a new run takes the rest
        # from DEFAULT_SETTINGS, a resumed one keeps what it saved (so the
        # same command resumes a run after the defaults changed).
        return dict(
            default=argparse.SUPPRESS,
            help=f"{help} (default: {d[key]})".lstrip(),
        )

    for flag in ("num_layers", "d_model", "num_heads", "d_ff", "max_length"):
        size.add_argument(
            "--" + flag.replace("_", "-"), type=positive_int, **recipe(flag)
        )
    size.add_argument(
        "--dropout-rate", type=rate_or_auto,
        **recipe(
            "dropout_rate",
            f"dropout on embeddings and sub-layer outputs; auto: "
            f"{SHORT_RUN_DROPOUT_RATE}, {MID_RUN_DROPOUT_RATE} when the run may "
            f"take {MID_RUN_EPOCHS}+ epochs, {LONG_RUN_DROPOUT_RATE} when "
            f"{LONG_RUN_EPOCHS}+ (with --time-limit-minutes: "
            "as many as the limit affords at the pace of a few steps timed "
            "when the run begins)",
        ),
    )
    size.add_argument(
        "--attention-dropout-rate", type=rate,
        **recipe("attention_dropout_rate", "dropout on the attention weights"),
    )
    tok = train.add_argument_group("tokenizers")
    tok.add_argument(
        "--vocabulary-size", type=positive_int, **recipe("vocabulary_size")
    )
    tok.add_argument(
        "--separate-vocabularies",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one vocabulary per language (default: one shared vocabulary "
        "and one shared embedding matrix)",
    )
    tok.add_argument("--lowercase", action="store_true", **recipe("lowercase"))
    tok.add_argument(
        "--strip-accents", action="store_true", **recipe("strip_accents")
    )
    rec = train.add_argument_group("training")
    rec.add_argument(
        "--epochs", type=positive_int,
        **recipe("epochs", "the most epochs; with --time-limit-minutes, none unless given"),
    )
    rec.add_argument(
        "--tokens-per-batch", type=positive_int, **recipe("tokens_per_batch")
    )
    rec.add_argument("--warmup-steps", type=positive_int, **recipe("warmup_steps"))
    rec.add_argument(
        "--learning-rate-scale", type=positive_float, **recipe("learning_rate_scale")
    )
    rec.add_argument("--label-smoothing", type=rate, **recipe("label_smoothing"))
    rec.add_argument(
        "--cooldown-fraction", type=rate,
        **recipe(
            "cooldown_fraction",
            "the last share of the run's steps (planned from --epochs or "
            "--time-limit-minutes) in which the learning rate falls linearly "
            "to zero (0: the paper's schedule to the end)",
        ),
    )
    rec.add_argument(
        "--jit-compile", action="store_true",
        **recipe(
            "jit_compile",
            "XLA, with batches of at most 16 shapes (pays on GPUs; on a CPU "
            "only for small models and long runs: benchmarks/README.md section 7)",
        ),
    )
    rec.add_argument(
        "--dtype-policy",
        choices=("auto", *POLICIES),
        **recipe(
            "dtype_policy",
            "auto: mixed_float16 on a GPU, mixed_bfloat16 on CPUs with AVX-512 "
            "BF16 or AMX (1.4x faster there), float32 elsewhere",
        ),
    )
    rec.add_argument("--seed", type=non_negative_int, **recipe("seed"))
    rec.add_argument(
        "--time-limit-minutes",
        type=positive_float,
        default=argparse.SUPPRESS,
        help="stop at the last epoch that ends within this time",
    )
    rec.add_argument(
        "--patience",
        type=non_negative_int,
        metavar="N",
        **recipe(
            "patience",
            "stop once N epochs in a row have not lowered the best validation "
            "loss (0: never)",
        ),
    )
    rec.add_argument(
        "--backup-every-steps",
        type=positive_int,
        **recipe(
            "backup_every_steps",
            "steps between backups (a killed run resumes from the last one)",
        ),
    )
    rec.add_argument(
        "--average-last",
        type=non_negative_int,
        metavar="N",
        **recipe(
            "average_last",
            "keep the last N epochs' models and the N ending at the best "
            "epoch in RUN_DIR/epochs/ and, at the end, keep the average of "
            "either instead of the best single epoch when its validation "
            "loss is lower (0: off)",
        ),
    )
    train.add_argument("--out", required=True, help="the RUN_DIR")
    train.add_argument(
        "--quiet", action="store_true", help="one line per epoch, no progress bars"
    )


def checked_number(name, convert, is_valid, requirement):
    """An argparse `type=`: `convert(text)` (`int` or `float`), accepted when
    `is_valid(value)`. Anything else stops the command before it starts,
    with `argument --flag: must be <requirement>; received '<text>'` and
    exit code 2. NaN fails every comparison, so every float check below
    rejects it; infinities are rejected too.

    Example:
    >>> parser.add_argument("--epochs", type=positive_int)
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and is_valid(value)):
            raise argparse.ArgumentTypeError(
                f"must be {requirement}; received {text!r}"
            )
        return value

    parse.__name__ = name
    parse.requirement = requirement
    return parse


positive_int = checked_number("positive_int", int, lambda v: v >= 1, "an int >= 1")
non_negative_int = checked_number(
    "non_negative_int", int, lambda v: v >= 0, "an int >= 0"
)
positive_float = checked_number(
    "positive_float", float, lambda v: v > 0, "a number > 0"
)
non_negative_float = checked_number(
    "non_negative_float", float, lambda v: v >= 0, "a number >= 0"
)
# Dropout and label smoothing.
rate = checked_number("rate", float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def or_auto(checked):
    """`checked` (a `checked_number` type) that also takes the word "auto",
    for a flag whose default is chosen for the run (`--dropout-rate`):
    typing the default must work as leaving the flag out does."""

    requirement = f"{checked.requirement} or auto"

    def parse(text):
        if text == "auto":
            return text
        try:
            return checked(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be {requirement}; received {text!r}"
            ) from None

    parse.__name__ = f"{checked.__name__}_or_auto"
    parse.requirement = requirement
    return parse


rate_or_auto = or_auto(rate)
fraction = checked_number(
    "fraction", float, lambda v: 0 < v < 1, "a number in (0, 1)"
)
top_p = checked_number("top_p", float, lambda v: 0 < v <= 1, "a number in (0, 1]")
round_index = checked_number(
    "round_index", int, lambda v: v >= -1, "an int >= -1 (-1: the last round)"
)
demo_examples = checked_number(
    "demo_examples", int, lambda v: v >= 100, "an int >= 100"
)
