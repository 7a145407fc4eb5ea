"""The `stageshow` command line.

    stageshow demo                      the main job: offline, a few minutes
    stageshow train --out RUN_DIR       Multi30k or your files; resumable
    stageshow translate --model RUN_DIR [TEXT ...]
    stageshow evaluate --model RUN_DIR  BLEU (sacreBLEU and lowercased)
    stageshow export --model RUN_DIR --out DIR   a SavedModel for TF Serving

Every numeric flag is checked by argparse (`positive_int`, `rate`, ...), so
a value out of range stops the command before any work with `argument
--epochs: must be an int >= 1; received '-1'` (exit code 2).

The command line is quiet: unless `TF_CPP_MIN_LOG_LEVEL` is set, it sets it
to 3 before TensorFlow loads and drops the C++ lines TensorFlow 2.21 prints
while it loads regardless of that setting (`quiet_tensorflow`); it also
drops TensorFlow's `tf.function` retracing warning, which the decoding's
shape buckets cause by design. Python warnings are kept, and the library's
own (invalid UTF-8 lines, ...) read `stageshow <command>: warning: ...`.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import time

from keras_stageshow.files import write_json_atomically
from keras_stageshow.utf8 import decode_lines


def main(argv=None):
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    _show_library_warnings(args.command)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError, TypeError, OSError, RuntimeError) as error:
        # The library's errors name the argument and the fix; a traceback
        # from deep inside would only hide that.
        print(f"stageshow {args.command}: error: {error}", file=sys.stderr)
        return 2


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
        "--examples", type=demo_examples, default=8000,
        help="training pairs (at least 100)",
    )
    demo.add_argument("--epochs", type=positive_int, default=8)
    demo.add_argument("--seed", type=non_negative_int, default=0)
    demo.add_argument(
        "--out", default="stageshow_demo", help="folder for the saved run"
    )
    _add_train_parser(commands)
    _add_translate_parsers(commands)
    _add_export_parser(commands)
    return parser


# TensorFlow's C++ log level the command line sets when the user has not:
# 3 keeps only FATAL lines (every error that stops a command also reaches
# Python as an exception, with its message).
QUIET_TF_CPP_MIN_LOG_LEVEL = "3"
# A line of TensorFlow's C++ log (absl format: severity, date, time, thread,
# file:line]; before absl is initialized the time is 00:00:<epoch seconds>)
# of severity INFO, WARNING or ERROR, and the notice absl prints before its
# first such line.
_TF_CPP_LOG_LINE = re.compile(
    rb"^([IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


def quiet_tensorflow():
    """Keeps TensorFlow's own chatter off the command line's stderr.

    Unless the user has set `TF_CPP_MIN_LOG_LEVEL` (then it is left to
    them), it is set to `QUIET_TF_CPP_MIN_LOG_LEVEL` and TensorFlow is
    imported with its C++ INFO/WARNING/ERROR lines dropped: TensorFlow 2.21
    prints some (oneDNN, CUDA stubs) while loading, before it reads
    `TF_CPP_MIN_LOG_LEVEL` (absl's log is not initialized yet; see
    tensorflow/tensorflow#102212). Whatever else is written meanwhile is
    kept. It also drops TensorFlow's "triggered tf.function retracing"
    warning, which the decoding's shape buckets cause by design; every
    other warning is kept. For the command line only: the library itself
    changes no log setting.
    """
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addFilter(_drop_retracing_warning)  # once: filters are a set
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_TF_CPP_MIN_LOG_LEVEL
    with _tf_cpp_log_dropped():
        import tensorflow  # noqa: F401


def _drop_retracing_warning(record):
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _tf_cpp_log_dropped():
    """Sends file descriptor 2 to a temporary file meanwhile, then writes
    back every line that is not a TensorFlow C++ log line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(
                line for line in captured if not _TF_CPP_LOG_LINE.match(line)
            )
            while kept:
                kept = kept[os.write(2, kept):]


class _CommandLineWarnings(logging.StreamHandler):
    """The library's warnings (logger `keras_stageshow`) on stderr, as
    `stageshow <command>: warning: ...`."""

    def __init__(self, command):
        super().__init__(sys.stderr)
        self.setFormatter(
            logging.Formatter(f"stageshow {command}: warning: %(message)s")
        )


def _show_library_warnings(command):
    logger = logging.getLogger("keras_stageshow")
    for handler in list(logger.handlers):
        if isinstance(handler, _CommandLineWarnings):  # an earlier `main` call
            logger.removeHandler(handler)
    logger.addHandler(_CommandLineWarnings(command))


def _run(args):
    if args.command == "demo":
        return run_demo(args)
    if args.command == "train":
        return run_train(args)
    if args.command == "translate":
        return run_translate(args)
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "export":
        return run_export(args)
    return 2


def _add_generation_flags(parser):
    parser.add_argument("--model", required=True, help="a RUN_DIR")
    parser.add_argument(
        "--strategy", choices=("greedy", "beam", "sample"), default="greedy"
    )
    parser.add_argument("--num-beams", type=positive_int, default=4)
    parser.add_argument(
        "--length-penalty", type=non_negative_float, default=0.6,
        help="alpha, for beam",
    )
    parser.add_argument("--top-k", type=positive_int, help="for sample")
    parser.add_argument("--top-p", type=top_p, help="for sample")
    parser.add_argument("--temperature", type=positive_float, default=1.0)
    parser.add_argument("--seed", type=non_negative_int, help="for sample")
    parser.add_argument("--batch-size", type=positive_int, default=32)


def _generation_options(args):
    options = {"strategy": args.strategy, "batch_size": args.batch_size}
    if args.strategy == "beam":
        options.update(num_beams=args.num_beams, length_penalty=args.length_penalty)
    elif args.strategy == "sample":
        options.update(
            top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
            seed=args.seed,
        )
    return options


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
        "--round", type=round_index, default=-1,
        help="the round (layer) to draw; -1 is the last",
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU of a trained RUN_DIR on a Multi30k split or on your files",
    )
    _add_generation_flags(evaluate)
    evaluate.add_argument("--data-dir", help="local Multi30k folder")
    evaluate.add_argument("--split", default="test_2016_flickr")
    evaluate.add_argument("--source-lang", default="de")
    evaluate.add_argument("--target-lang", default="en")
    evaluate.add_argument("--source-file", help="sentences to translate")
    evaluate.add_argument("--reference-file", help="their reference translations")
    evaluate.add_argument("--output", help="write the translations here")


def run_translate(args):
    from keras_stageshow.models.translator import Translator

    if args.text:
        # `sys.argv` holds undecodable bytes as surrogates; `fsencode`
        # gives the bytes back.
        texts = decode_lines(map(os.fsencode, args.text), "TEXT")
    else:
        texts = decode_lines(sys.stdin.buffer, "stdin")
    translator = Translator.load(args.model)
    translations = translator.translate(texts, **_generation_options(args))
    for translation in translations:
        print(translation)
    if args.plot_attention:
        from keras_stageshow.plotting import plot_attention

        stem, suffix = os.path.splitext(args.plot_attention)
        for i, text in enumerate(texts):
            if not text.strip():
                continue
            path = args.plot_attention if len(texts) == 1 else f"{stem}-{i + 1}{suffix}"
            # The model translates again, so the picture shows the tokens
            # it voted.
            options = _generation_options(args)
            options.pop("batch_size")
            plot_attention(
                translator, text, round_index=args.round, path=path, **options
            )
            print(f"attention: {path}", file=sys.stderr)
    return 0


def run_evaluate(args):
    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import load_parallel_files
    from keras_stageshow.evaluation import bleu_scores
    from keras_stageshow.files import write_text_atomically
    from keras_stageshow.models.translator import Translator

    if args.source_file or args.reference_file:
        if not (args.source_file and args.reference_file):
            raise SystemExit(
                "stageshow evaluate: give both --source-file and --reference-file."
            )
        sources, references = load_parallel_files(
            args.source_file, args.reference_file
        )
        data = f"{args.source_file} / {args.reference_file}"
    else:
        sources, references = load_multi30k(
            args.split, args.source_lang, args.target_lang, data_dir=args.data_dir
        )
        data = f"multi30k {args.split}"
    translator = Translator.load(args.model)
    start = time.time()
    hypotheses = translator.translate(sources, **_generation_options(args))
    seconds = time.time() - start
    if args.output:
        write_text_atomically(args.output, "\n".join(hypotheses) + "\n")
    scores = bleu_scores(hypotheses, references)
    scores.update(
        data=data, strategy=args.strategy, translate_seconds=round(seconds, 1)
    )
    print(json.dumps(scores))
    return 0


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
        "--num-beams", type=positive_int, default=4,
        help="beams of the beam_search signature",
    )
    export.add_argument(
        "--length-penalty", type=non_negative_float, default=0.6,
        help="alpha of the beam_search signature",
    )
    export.add_argument(
        "--max-new-tokens", type=positive_int,
        help="longest translation in tokens (default: source length + 50, "
        "capped at the model's max_length)",
    )
    export.add_argument(
        "--batch-size", type=positive_int, default=32,
        help="sentences decoded together inside the graph",
    )
    export.add_argument(
        "--jit-compile", action="store_true",
        help="decode with XLA inside the graph (TF Serving needs "
        "--xla_cpu_compilation_enabled=true on CPU; off by default)",
    )
    export.add_argument(
        "--dtype",
        help="compute dtype of the graph, e.g. float32 for a mixed_float16 "
        "model served on CPUs (default: the model's)",
    )


def run_export(args):
    from keras_stageshow.serving import SIGNATURES
    from keras_stageshow.serving import export_for_serving

    path = export_for_serving(
        args.model,
        args.out,
        version=args.version,
        num_beams=args.num_beams,
        length_penalty=args.length_penalty,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        dtype=args.dtype,
        jit_compile=args.jit_compile,
    )
    print(json.dumps({"saved_model": path, "signatures": SIGNATURES}))
    return 0


def _add_train_parser(commands):
    from keras_stageshow.training.run import DEFAULT_SETTINGS as d

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
    data.add_argument("--source-lang", default="de")
    data.add_argument("--target-lang", default="en")
    data.add_argument("--source-file", help="your source sentences, one a line")
    data.add_argument("--target-file", help="their translations, line by line")
    data.add_argument("--tsv", help="one file of source<TAB>target lines")
    data.add_argument(
        "--valid-fraction",
        type=fraction,
        default=0.05,
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
    size.add_argument("--dropout-rate", type=rate, **recipe("dropout_rate"))
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
    rec.add_argument("--epochs", type=positive_int, **recipe("epochs"))
    rec.add_argument(
        "--tokens-per-batch", type=positive_int, **recipe("tokens_per_batch")
    )
    rec.add_argument("--warmup-steps", type=positive_int, **recipe("warmup_steps"))
    rec.add_argument(
        "--learning-rate-scale", type=positive_float, **recipe("learning_rate_scale")
    )
    rec.add_argument("--label-smoothing", type=rate, **recipe("label_smoothing"))
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
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
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


def load_training_pairs(args):
    """`(train_pairs, val_pairs, description)` from the data flags."""
    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import load_parallel_files
    from keras_stageshow.datasets import load_tsv

    if args.tsv or args.source_file or args.target_file:
        if args.tsv:
            source, target = load_tsv(args.tsv)
            description = f"tsv {args.tsv}"
        elif args.source_file and args.target_file:
            source, target = load_parallel_files(args.source_file, args.target_file)
            description = f"files {args.source_file} {args.target_file}"
        else:
            raise SystemExit(
                "stageshow train: give both --source-file and --target-file "
                "(or one --tsv)."
            )
        held_out = max(1, int(len(source) * args.valid_fraction))
        if held_out >= len(source):
            raise SystemExit(
                f"stageshow train: {len(source)} pairs are too few to hold "
                "some out for validation."
            )
        train = (source[:-held_out], target[:-held_out])
        val = (source[-held_out:], target[-held_out:])
    else:
        pair = dict(source=args.source_lang, target=args.target_lang)
        train = load_multi30k("train", data_dir=args.data_dir, **pair)
        val = load_multi30k("val", data_dir=args.data_dir, **pair)
        description = f"multi30k {args.source_lang}-{args.target_lang}"
    if args.max_examples:
        train = (train[0][: args.max_examples], train[1][: args.max_examples])
        description += f" (first {args.max_examples} pairs)"
    return train, val, description


def run_train(args):
    from keras_stageshow.training.run import DEFAULT_SETTINGS
    from keras_stageshow.training.run import train_translation_run

    train, val, description = load_training_pairs(args)
    settings = {k: getattr(args, k) for k in DEFAULT_SETTINGS if hasattr(args, k)}
    if getattr(args, "separate_vocabularies", False):
        settings["shared_vocabulary"] = False
    run = train_translation_run(
        args.out,
        train,
        val,
        data_description=description,
        verbose=2 if args.quiet else 1,
        **settings,
    )
    keys = (
        "parameters", "epochs_done", "train_seconds", "best_val_loss", "best_epoch",
        "averaging",
    )
    print(json.dumps({k: run.get(k) for k in keys}))
    return 0


DEMO_SETTINGS = dict(
    num_layers=2,
    d_model=64,
    num_heads=4,
    d_ff=128,
    dropout_rate=0.1,
    max_length=64,
    vocabulary_size=200,
    shared_vocabulary=True,
    tokens_per_batch=1024,
    warmup_steps=200,
    learning_rate_scale=0.25,
    label_smoothing=0.1,
    # The demo's figures (README) are float32 without averaging, on every CPU.
    dtype_policy="float32",
    average_last=0,
)


def run_demo(args):
    from keras_stageshow.datasets.synthetic import stage_language_pairs
    from keras_stageshow.evaluation import bleu_scores
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.training.run import train_translation_run

    print(
        "The task: translate the stage language into English. The stage "
        "language puts the verb last and adjectives after their noun:\n"
        "  stage:   ein hundo klein im de parko de ballo rot siehta\n"
        "  English: a small dog sees the red ball in the park\n"
    )
    train = stage_language_pairs(args.examples, seed=args.seed)
    val = stage_language_pairs(300, seed=args.seed + 1)
    test_source, test_target = stage_language_pairs(200, seed=args.seed + 2)
    run = train_translation_run(
        args.out,
        train,
        val,
        data_description=f"stage language, {args.examples} pairs (generated)",
        verbose=2,
        epochs=args.epochs,
        seed=args.seed,
        **DEMO_SETTINGS,
    )
    translator = Translator.load(args.out)
    start = time.time()
    greedy = translator.translate(test_source, batch_size=64)
    greedy_seconds = time.time() - start
    beam = translator.translate(
        test_source, strategy="beam", num_beams=4, batch_size=64
    )
    print("\nWhat it learned (held-out sentences, greedy awards ceremony):")
    for source, predicted, expected in list(zip(test_source, greedy, test_target))[:5]:
        print(f"  stage:     {source}")
        print(f"  predicted: {predicted}")
        print(f"  expected:  {expected}\n")
    summary = {
        "parameters": run["parameters"],
        "epochs": run["epochs_done"],
        "train_seconds": run["train_seconds"],
        "held_out_exact_match_greedy": round(
            sum(p == e for p, e in zip(greedy, test_target)) / len(test_target), 4
        ),
        "held_out_exact_match_beam4": round(
            sum(p == e for p, e in zip(beam, test_target)) / len(test_target), 4
        ),
        "held_out_bleu_greedy": bleu_scores(greedy, test_target)["sacrebleu"],
        "greedy_seconds_per_sentence": round(greedy_seconds / len(test_source), 4),
        "run_dir": os.path.abspath(args.out),
    }
    write_json_atomically(os.path.join(args.out, "summary.json"), summary)
    print(json.dumps(summary))
    print(
        f"\nTranslate more with:  stageshow translate --model {args.out} "
        '"ein vogo alt de bucho tragta"'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
