"""Real-data benchmark: Multi30k translation, either direction, on this machine.

Trains (or resumes, or reuses a finished) run in --out with the library's
`stageshow train` code, the model selected by validation loss (with
--average-last N: the best of the best single epoch, the average of the
last N epochs and that of the N ending at the best one), then scores
test_2016_flickr with greedy decoding and beam search: sacreBLEU (cased,
13a) and lowercased 13a BLEU. Prints one JSON line, with the epochs
reached, the training minutes, which model was kept and the machine's CPU.

    python benchmarks/multi30k.py --data-dir ../shared/data/multi30k
    python benchmarks/multi30k.py --source-lang en --target-lang de

`--smoke` (CI): 40 pairs of each split, a tiny model (`common.SMOKE_SIZE`)
with a 100-piece vocabulary, 2 epochs averaged (`--average-last 2`) into a
temporary RUN_DIR, beam 2.
"""

import argparse
import os
import sys

from common import HERE  # also turns on oneDNN before TensorFlow loads
from common import MULTI30K_DIR
from common import SMOKE_RUN_SETTINGS
from common import averaging_summary
from common import cpu_info
from common import kept_model
from common import onednn_enabled
from common import parse_args
from common import print_result
from common import score_translations
from common import smoke_out_dir

from keras_stageshow.cli_flags import non_negative_int

LANGUAGES = ("de", "en")

# The run's settings are `stageshow train`'s defaults, tuned on val
# (benchmarks/README.md, section 9: 3 + 3 layers, d_model 256, 8 heads,
# d_ff 512; one shared 6000-piece vocabulary; ~2048-token batches; the
# learning rate peaking at 1.8e-3 after 600 steps; bfloat16 where the CPU
# has it; 5 epochs averaged; a stop 5 epochs after the best), given the
# time limit and no epoch limit, as `stageshow train --time-limit-minutes`.


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=MULTI30K_DIR,
    )
    parser.add_argument("--source-lang", choices=LANGUAGES, default="de")
    parser.add_argument("--target-lang", choices=LANGUAGES, default="en")
    parser.add_argument(
        "--out",
        help="the RUN_DIR (default: benchmarks/runs/multi30k-SRC-TGT, with "
        "-avgN when --average-last N)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None,
        help="an epoch limit besides the time limit (default: none)",
    )
    parser.add_argument("--time-limit-minutes", type=float, default=45.0)
    parser.add_argument(
        "--average-last",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="average the last N epochs (and the N ending at the best one) "
        "and keep the best of those and the best single epoch on validation "
        "loss (0: off; default: `stageshow train`'s)",
    )
    # Chosen on val (benchmarks/README.md, section 9).
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--quiet", action="store_true")
    args = parse_args(parser, argv, epochs=2, average_last=2, num_beams=2)
    if args.source_lang == args.target_lang:
        parser.error("--source-lang and --target-lang must differ.")
    direction = f"{args.source_lang}-{args.target_lang}"
    runs = smoke_out_dir("multi30k") if args.smoke else os.path.join(HERE, "runs")
    out = args.out or os.path.join(
        runs,
        f"multi30k-{direction}" + (
            f"-avg{args.average_last}" if args.average_last is not None else ""
        ),
    )

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.training.run import train_translation_run

    pair = dict(source=args.source_lang, target=args.target_lang, data_dir=args.data_dir)
    train = load_multi30k("train", **pair)
    val = load_multi30k("val", **pair)
    test_source, test_reference = load_multi30k("test_2016_flickr", **pair)
    run = train_translation_run(
        out,
        train,
        val,
        data_description=f"multi30k {direction}",
        verbose=2 if args.quiet else 1,
        **{
            **(SMOKE_RUN_SETTINGS if args.smoke else {}),
            **({} if args.epochs is None else {"epochs": args.epochs}),
            "time_limit_minutes": args.time_limit_minutes,
            **({} if args.average_last is None else {"average_last": args.average_last}),
        },
    )
    translator = Translator.load(out)
    result = {
        "benchmark": f"multi30k_{args.source_lang}_{args.target_lang}",
        "direction": direction,
        "test_split": "test_2016_flickr",
        "parameters": run["parameters"],
        # What the run trained with that the machine or a flag decides.
        "dtype_policy": run["settings"]["dtype_policy"],
        # "auto" fixes it by the epochs the limit affords at the pace the
        # run timed as it began (`training/pace.py`).
        "dropout_rate": run["settings"]["dropout_rate"],
        "pace": run.get("pace"),
        "average_last": run["settings"]["average_last"],
        "cooldown": run.get("cooldown"),
        "decoding": {"num_beams": args.num_beams, "length_penalty": args.length_penalty},
        "epochs": run["epochs_done"],
        "epochs_limit": run["settings"]["epochs"],
        "stopped_by_time_limit": bool(run.get("stopped_by_time_limit")),
        "stopped_by_patience": bool(run.get("stopped_by_patience")),
        "best_epoch": run["best_epoch"],
        "train_seconds": run["train_seconds"],
        "train_minutes": round(run["train_seconds"] / 60, 1),
        "train_target_tokens_per_second": round(
            run["train_data"]["target_tokens"] * run["epochs_done"]
            / run["train_seconds"]
        ),
        "source_padding": run["train_data"]["source_padding"],
        "target_padding": run["train_data"]["target_padding"],
        "best_val_loss": round(run["best_val_loss"], 4),
        # The model scored below: "best_single" (the epoch with the lowest
        # validation loss), "average" (of the last epochs, `epochs`) or
        # "average_to_best" (of `average_to_best_epochs`).
        "model": kept_model(run),
        "averaging": averaging_summary(run),
        "cpu": cpu_info(),
        "onednn": onednn_enabled(),
    }
    for name, options in (
        ("greedy", {"strategy": "greedy"}),
        (
            f"beam{args.num_beams}",
            {
                "strategy": "beam",
                "num_beams": args.num_beams,
                "length_penalty": args.length_penalty,
            },
        ),
    ):
        scores = score_translations(translator, test_source, test_reference, **options)
        result[f"{name}_sacrebleu"] = scores["sacrebleu"]
        result[f"{name}_bleu_lc_tok"] = scores["bleu_lc_tok"]
        result[f"{name}_decode_seconds"] = scores["decode_seconds"]
        if name == "greedy":
            result["examples"] = [
                {"source": s, "greedy": h, "reference": r}
                for s, h, r in list(
                    zip(test_source, scores["hypotheses"], test_reference)
                )[:3]
            ]
    result["sacrebleu_signature"] = scores["sacrebleu_signature"]
    result["lowercased_signature"] = scores["lowercased_signature"]
    print_result(result, args, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
