"""The `stageshow` command line.

    stageshow demo                      the main job: offline, a few minutes
    stageshow train --out RUN_DIR       Multi30k or your files; resumable
    stageshow translate --model RUN_DIR [TEXT ...]
    stageshow evaluate --model RUN_DIR  BLEU (sacreBLEU and lowercased)
    stageshow export --model RUN_DIR --out DIR   a SavedModel for TF Serving

A thin shell: each command (`COMMANDS`) takes its parsed flags
(`cli_flags.py`, which checks every number) to the library: the demo
(`demo.run_demo`), the data choice (`datasets/splits.py`), training
(`training.run.train_translation_run`), translation (`Translator`,
`plotting.plot_attention_files`), scoring (`evaluation.py`), the export
(`serving.export_for_serving`), and prints the result. The library is
imported inside the commands, after `quiet_tensorflow` (`cli_quiet.py`)
has set TensorFlow's log level: the command line prints no TensorFlow C++
log lines, and the library's warnings read `stageshow <command>: warning:
...`. A library error ends the command with `stageshow <command>: error:
...` and exit code 2.
"""

import json
import os
import sys

from keras_stageshow.cli_flags import build_parser
from keras_stageshow.cli_quiet import quiet_tensorflow
from keras_stageshow.cli_quiet import show_library_warnings
from keras_stageshow.utf8 import decode_lines


def main(argv=None):
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    show_library_warnings(args.command)
    try:
        return COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError, TypeError, OSError, RuntimeError) as error:
        # The library's errors name the argument and the fix; a traceback
        # from deep inside would only hide that.
        print(f"stageshow {args.command}: error: {error}", file=sys.stderr)
        return 2


def _given(args, *names):
    """The flags among `names` that have a value (a flag whose default is
    `argparse.SUPPRESS` has none unless given), as keyword arguments: the
    library function's own defaults stand for the others."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


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


def _demo(args):
    from keras_stageshow.demo import run_demo

    run_demo(**_given(args, "out", "examples", "epochs", "seed"))
    return 0


def _translate(args):
    from keras_stageshow.models.translator import Translator

    if args.text:
        # `sys.argv` holds undecodable bytes as surrogates; `fsencode`
        # gives the bytes back.
        texts = decode_lines(map(os.fsencode, args.text), "TEXT")
    else:
        texts = decode_lines(sys.stdin.buffer, "stdin")
    translator = Translator.load(args.model)
    options = _generation_options(args)
    for translation in translator.translate(texts, **options):
        print(translation)
    if args.plot_attention:
        from keras_stageshow.plotting import plot_attention_files

        options.pop("batch_size")
        paths = plot_attention_files(
            translator, texts, args.plot_attention, **_given(args, "round_index"),
            **options,
        )
        for path in paths:
            print(f"attention: {path}", file=sys.stderr)
    return 0


def _evaluate(args):
    from keras_stageshow.datasets.splits import load_test_pairs
    from keras_stageshow.evaluation import evaluate_translator
    from keras_stageshow.models.translator import Translator

    if bool(args.source_file) != bool(args.reference_file):
        raise SystemExit(
            "stageshow evaluate: give both --source-file and --reference-file."
        )
    sources, references, data = load_test_pairs(
        **_given(
            args, "source_file", "reference_file", "split", "source_lang",
            "target_lang", "data_dir",
        )
    )
    translator = Translator.load(args.model)
    scores = evaluate_translator(
        translator, sources, references, data=data, output=args.output,
        **_generation_options(args),
    )
    print(json.dumps(scores))
    return 0


def _export(args):
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


# The keys of run.json that `stageshow train` prints.
TRAIN_SUMMARY_KEYS = (
    "parameters", "epochs_done", "train_seconds", "best_val_loss", "best_epoch",
    "averaging",
)


def _train(args):
    from keras_stageshow.datasets.splits import TooFewPairs
    from keras_stageshow.datasets.splits import load_training_pairs
    from keras_stageshow.training.recipe import DEFAULT_SETTINGS
    from keras_stageshow.training.run import train_translation_run

    if not args.tsv and bool(args.source_file) != bool(args.target_file):
        raise SystemExit(
            "stageshow train: give both --source-file and --target-file "
            "(or one --tsv)."
        )
    try:
        train, val, description = load_training_pairs(
            **_given(
                args, "tsv", "source_file", "target_file", "valid_fraction",
                "source_lang", "target_lang", "data_dir", "max_examples",
            )
        )
    except TooFewPairs as error:
        raise SystemExit(f"stageshow train: {error}") from None
    settings = _given(args, *DEFAULT_SETTINGS)
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
    print(json.dumps({k: run.get(k) for k in TRAIN_SUMMARY_KEYS}))
    return 0


# Each command and the function that runs it.
COMMANDS = {
    "demo": _demo,
    "train": _train,
    "translate": _translate,
    "evaluate": _evaluate,
    "export": _export,
}


if __name__ == "__main__":
    sys.exit(main())
