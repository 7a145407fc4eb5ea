"""BLEU on test_2016_flickr against training minutes: one Multi30k run with
`stageshow train`'s defaults, scored as if it had been given each time
limit in turn (issue 26: the curve at 15, 45, 90 and 135 minutes).

One run trains in --out for each dropout the default takes at these
limits (--out/run-dropout-R). The default's dropout depends on the epochs
a limit affords at the machine's pace (`dropout_rate_for_budget`), which a
run times as it begins (`training/pace.py`): the curve times it once
(`tune_multi30k.pace_of`, in --out/pace) and gives each limit the dropout
of the epochs it affords at that pace. At each limit T (15, 45, 90, 135 by default) it is
stopped where `--time-limit-minutes T` would have stopped it (the first
epoch after which the next one would end past T; `tune_multi30k.train_for`;
a run its `--patience` stopped before T is scored as it ended)
and copied to --out/at-T-min, where `stageshow train --epochs <epochs
done>` finishes the copy as a run with that time limit finishes: the last
epochs averaged and the average or the best single epoch kept, whichever
has the lower validation loss. That model is scored on test_2016_flickr
(greedy and beam; sacreBLEU cased 13a and lowercased 13a) and the original
run carries on from its backup, as if never stopped. Nothing is chosen
here: the recipe was chosen on val (benchmarks/README.md, section 9).

Each point is appended to --out/curve.jsonl as it is scored, so a killed
curve resumes where it stopped. Prints one JSON line with every point.

    python benchmarks/multi30k_curve.py --source-lang en --target-lang de

`--smoke` (CI): 40 pairs of each split, a tiny model (`common.SMOKE_SIZE`, a
100-piece vocabulary, the last 2 epochs averaged) in a temporary folder, one
point (stopped after its first epoch), beam 2.
"""

import argparse
import json
import os
import shutil
import sys

from common import HERE
from common import MULTI30K_DIR
from common import averaging_summary
from common import cpu_info
from common import kept_model
from common import parse_args
from common import print_result
from common import score_translations
from common import smoke_out_dir
from common import smoke_train_flags
from tune_multi30k import pace_of
from tune_multi30k import train_for
from keras_stageshow.run_dir import EPOCHS_DIR
from keras_stageshow.run_dir import LOCK_FILE
from keras_stageshow.run_dir import LOGS_DIR
from keras_stageshow.run_dir import read_run


def finish_as_time_limited(out, at, flags, log):
    """Copies the stopped run in `out` to `at` and finishes the copy as a
    run stopped by its time limit: `stageshow train` with `--epochs` the
    epochs done trains nothing, averages and marks the run complete."""
    if os.path.isdir(at):
        shutil.rmtree(at)  # a copy a killed curve left half made
    shutil.copytree(out, at, ignore=shutil.ignore_patterns(LOCK_FILE, LOGS_DIR))
    epochs = read_run(at)["epochs_done"]
    return train_for(0, at, [*flags, "--epochs", str(epochs)], log)


def run_dir_for(out, dropout_rate):
    """The curve's run with this dropout."""
    return os.path.join(out, f"run-dropout-{dropout_rate:g}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=MULTI30K_DIR)
    parser.add_argument("--source-lang", choices=("de", "en"), default="en")
    parser.add_argument("--target-lang", choices=("de", "en"), default="de")
    parser.add_argument("--out", help="default: benchmarks/runs/curve-SRC-TGT")
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[15, 45, 90, 135],
        help="the time limits to score, in increasing order",
    )
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    args = parse_args(parser, argv, minutes=[0.01], num_beams=2)
    if args.source_lang == args.target_lang:
        parser.error("--source-lang and --target-lang must differ.")
    if args.minutes != sorted(args.minutes) or min(args.minutes) <= 0:
        parser.error("--minutes must be positive and in increasing order.")
    direction = f"{args.source_lang}-{args.target_lang}"
    runs = smoke_out_dir("curve") if args.smoke else os.path.join(HERE, "runs")
    out = args.out or os.path.join(runs, f"curve-{direction}")
    os.makedirs(out, exist_ok=True)
    points_path = os.path.join(out, "curve.jsonl")
    points = []
    if os.path.exists(points_path):
        with open(points_path) as f:
            points = [json.loads(line) for line in f if line.strip()]
    flags = [
        "--data-dir", args.data_dir, "--source-lang", args.source_lang,
        "--target-lang", args.target_lang,
        # Room for every limit: the kills below, or the run's patience
        # (a time-limited run stops on val too), end it.
        "--epochs", "200",
        *(smoke_train_flags() + ["--average-last", "2"] if args.smoke else []),
    ]

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.training.recipe import dropout_rate_for_budget

    test_source, test_reference = load_multi30k(
        "test_2016_flickr", source=args.source_lang, target=args.target_lang,
        data_dir=args.data_dir,
    )
    pace = pace_of(
        os.path.join(out, "pace"), flags, args.minutes[-1], os.path.join(out, "pace.log")
    )

    def dropout_for(minutes):
        # The default's dropout for this limit at this machine's pace; each
        # dropout has a run of its own, given it explicitly (the run has no
        # time limit of its own: it is stopped from here).
        return dropout_rate_for_budget(
            time_limit_minutes=minutes, seconds_per_epoch=pace["seconds_per_epoch"]
        )

    for minutes in args.minutes[len(points):]:
        dropout_rate = dropout_for(minutes)
        run_dir = run_dir_for(out, dropout_rate)
        run_flags = [*flags, "--dropout-rate", str(dropout_rate)]
        train_for(minutes, run_dir, run_flags, run_dir + ".log", as_time_limit=True)
        at = os.path.join(out, f"at-{minutes:g}-min")
        run = finish_as_time_limited(run_dir, at, run_flags, at + ".log")
        translator = Translator.load(at)
        point = {
            "time_limit_minutes": minutes,
            "dropout_rate": dropout_rate,
            "train_minutes": round(run["train_seconds"] / 60, 1),
            "epochs": run["epochs_done"],
            "steps": run.get("steps_done"),
            "best_epoch": run["best_epoch"],
            "best_val_loss": round(run["best_val_loss"], 4),
            "model": kept_model(run),
            "averaging": averaging_summary(run),
        }
        for name, options in (
            ("greedy", {"strategy": "greedy"}),
            (f"beam{args.num_beams}", {
                "strategy": "beam", "num_beams": args.num_beams,
                "length_penalty": args.length_penalty,
            }),
        ):
            scores = score_translations(
                translator, test_source, test_reference, **options
            )
            point[f"{name}_sacrebleu"] = scores["sacrebleu"]
            point[f"{name}_bleu_lc_tok"] = scores["bleu_lc_tok"]
        print(json.dumps(point), file=sys.stderr, flush=True)
        with open(points_path, "a") as f:
            f.write(json.dumps(point) + "\n")
        points.append(point)
        # The scored copy's checkpoints are not needed again.
        shutil.rmtree(os.path.join(at, EPOCHS_DIR), ignore_errors=True)
    run = read_run(run_dir_for(out, dropout_for(args.minutes[-1])))
    print_result({
        "benchmark": f"multi30k_curve_{args.source_lang}_{args.target_lang}",
        "direction": direction,
        "test_split": "test_2016_flickr",
        "parameters": run.get("parameters"),
        "dtype_policy": run["settings"]["dtype_policy"],
        "average_last": run["settings"]["average_last"],
        "decoding": {"num_beams": args.num_beams, "length_penalty": args.length_penalty},
        "pace": pace,
        "points": points,
        "cpu": cpu_info(),
    }, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
