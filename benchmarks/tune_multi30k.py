"""One tuning trial of the Multi30k recipe, scored on `val` only (issue 15).

Trains `stageshow train` with the given flags into --out for --minutes of
training (the run's own `train_seconds`, read from run.json after each
epoch; the process is killed right after the first epoch that reaches it,
so the RUN_DIR stays resumable: `benchmarks/multi30k.py --out RUN_DIR`
with the same settings carries it on to 45 minutes, as if never stopped).
Without a --dropout-rate among the train flags, the run gets the one
`stageshow train --time-limit-minutes M` would take (M: --minutes), by the
pace such a run times as it begins (`pace_of`).
Then scores the run's model (the best epoch so far on validation loss) on
`val` with greedy decoding and each `--beam` setting, and prints one JSON
line. test_2016_flickr is never loaded here: nothing is chosen by a test
score.

    python benchmarks/tune_multi30k.py --name wu_tiny --minutes 15 \\
        --source-lang en --target-lang de -- --num-layers 4 --d-model 128 ...

With `--score-run RUN_DIR` it trains nothing and scores that finished run's
model (the one it kept: best epoch or average) on `val` the same way.

`--smoke` (CI): 40 pairs of each split, a tiny model (`common.SMOKE_SIZE`,
a 100-piece vocabulary) trained for 2 epochs at most into a temporary folder
and stopped after its first (`--minutes 0`), beam 2 only.
"""

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time

from common import MULTI30K_DIR
from common import HERE
from common import averaging_summary
from common import cpu_info
from common import kept_model
from common import parse_args
from common import print_result
from common import score_translations
from common import smoke_out_dir
from common import smoke_requested
from common import smoke_train_flags
from keras_stageshow.run_dir import BACKUP_DIR
from keras_stageshow.run_dir import HISTORY_FILE
from keras_stageshow.run_dir import is_run_dir
from keras_stageshow.run_dir import read_run
from keras_stageshow.training.recipe import dropout_rate_for_budget


def epoch_fully_recorded(out):
    """`(epochs_done, train_seconds, next_epoch_seconds)` when the run's
    last epoch is recorded everywhere (run.json, history.csv and the backup
    a resume starts from), else None. `next_epoch_seconds` is what
    `RunProgress` projects the next epoch to take (None in runs from before
    it was recorded)."""
    try:
        run = read_run(out)
        with open(os.path.join(out, BACKUP_DIR, "state.json")) as f:
            backup = json.load(f)
        with open(os.path.join(out, HISTORY_FILE)) as f:
            rows = len(list(csv.DictReader(f)))
    except (OSError, ValueError):
        return None
    epochs = run["epochs_done"]
    at_epoch_end = backup.get("epoch") == epochs and backup.get("batches_done") == 0
    if epochs and rows == epochs and at_epoch_end:
        return epochs, run["train_seconds"], run.get("next_epoch_seconds")
    return None


def train_for(minutes, out, train_flags, log, as_time_limit=False):
    """Runs `stageshow train --out out *train_flags` until the run has
    recorded `minutes` of training (or ends); returns run.json.

    With `as_time_limit`, it stops where `--time-limit-minutes minutes`
    would have: after the first epoch at which the next one would end past
    the limit, by `RunProgress`'s own projection of the next epoch
    (run.json's `next_epoch_seconds`; the last epoch's seconds in a run
    from before it was recorded)."""
    command = [sys.executable, "-m", "keras_stageshow", "train", "--out", out,
               "--quiet", *train_flags]
    recorded = epoch_fully_recorded(out) or (0, 0.0, None)
    with open(log, "a") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=log_file)
        while process.poll() is None:
            time.sleep(1)
            now = epoch_fully_recorded(out)
            if now is None or now[0] == recorded[0]:
                continue
            (_, before, _), recorded = recorded, now
            _, seconds, next_epoch = now
            if as_time_limit:
                # When the next epoch would end.
                seconds += seconds - before if next_epoch is None else next_epoch
                done = seconds > 60 * minutes
            else:
                done = seconds >= 60 * minutes
            if done:
                # Killed as the next epoch begins: a resume starts from the
                # backup of the epoch just recorded, as if never stopped.
                process.send_signal(signal.SIGKILL)
                process.wait()
                break
    if process.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"stageshow train failed ({process.returncode}); see {log}")
    return read_run(out)


def pace_of(out, flags, minutes, log):
    """The pace (run.json's "pace") that `stageshow train
    --time-limit-minutes minutes` times as it begins (`training/pace.py`):
    a run begun in `out` with `flags` and stopped once it has timed its
    step (a benchmark resumed later reuses it). For the runs stopped from
    here, which have no time limit of their own: the dropout "auto" would
    take with one (`recipe.dropout_rate_for_budget`)."""
    pace = is_run_dir(out) and read_run(out).get("pace")
    if pace:
        return pace
    command = [
        sys.executable, "-m", "keras_stageshow", "train", "--out", out, "--quiet",
        # No --dropout-rate among `flags`: the default, "auto".
        *flags, "--time-limit-minutes", str(minutes),
    ]
    with open(log, "a") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=log_file)
        while process.poll() is None and not pace:
            time.sleep(1)
            pace = is_run_dir(out) and read_run(out).get("pace")
        process.kill()
        process.wait()
    pace = is_run_dir(out) and read_run(out).get("pace")
    if not pace:
        with open(log) as f:
            tail = f.read()[-2000:]
        raise SystemExit(
            f"stageshow train ended before it timed its step; the end of {log}:\n{tail}"
        )
    return pace


def loss_by_epoch(out, column):
    """One float per epoch from the run's history.csv (`loss`, `val_loss`)."""
    with open(os.path.join(out, HISTORY_FILE)) as f:
        return [round(float(row[column]), 4) for row in csv.DictReader(f)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=not smoke_requested(argv))
    parser.add_argument(
        "--data-dir",
        default=MULTI30K_DIR,
    )
    parser.add_argument("--source-lang", default="en")
    parser.add_argument("--target-lang", default="de")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument(
        "--beam", action="append", default=None, metavar="BEAMS:PENALTY",
        help="beam settings to score on val (default: 4:0.6, 5:0.6, 5:1.0)",
    )
    parser.add_argument(
        "--score-run", metavar="RUN_DIR",
        help="score this finished run on val instead of training one "
        "(e.g. a 45-minute `stageshow train --time-limit-minutes 45` run)",
    )
    parser.add_argument("train_flags", nargs="*", help="after --: train flags")
    args = parse_args(parser, argv, name="smoke", minutes=0.0, beam=["2:0.6"])
    beams = [tuple(b.split(":")) for b in (args.beam or ["4:0.6", "5:0.6", "5:1.0"])]
    if args.score_run:
        out = args.score_run
        run = read_run(out)
    else:
        trials = (
            smoke_out_dir("trials") if args.smoke else os.path.join(HERE, "runs", "trials")
        )
        out = os.path.join(trials, args.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        flags = [
            "--data-dir", args.data_dir, "--source-lang", args.source_lang,
            "--target-lang", args.target_lang, "--epochs", "200",
            *(smoke_train_flags() + ["--epochs", "2"] if args.smoke else []),
        ]
        if "--dropout-rate" not in args.train_flags and args.minutes:
            # The default's dropout for these minutes: the run has no time
            # limit of its own (it is stopped from here), so "auto" would
            # take the long runs' at --epochs 200. It is the dropout of the
            # epochs the minutes afford at this machine's pace (timed once
            # in OUT.pace).
            pace = pace_of(
                out + ".pace", flags + args.train_flags, args.minutes,
                out + ".pace.log",
            )
            flags += ["--dropout-rate", str(dropout_rate_for_budget(
                time_limit_minutes=args.minutes,
                seconds_per_epoch=pace["seconds_per_epoch"],
            ))]
        flags += args.train_flags
        run = train_for(args.minutes, out, flags, out + ".log")

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.models.translator import Translator

    val_source, val_reference = load_multi30k(
        "val", source=args.source_lang, target=args.target_lang,
        data_dir=args.data_dir,
    )
    translator = Translator.load(out)
    scores = {
        "greedy": score_translations(
            translator, val_source, val_reference, strategy="greedy"
        )
    }
    for num_beams, penalty in beams:
        scores[f"beam{num_beams}_lp{penalty}"] = score_translations(
            translator, val_source, val_reference, strategy="beam",
            num_beams=int(num_beams), length_penalty=float(penalty),
        )
    print_result({
        "benchmark": "multi30k_trial",
        "trial": args.name,
        "direction": f"{args.source_lang}-{args.target_lang}",
        "scored_on": "val",
        "train_flags": args.train_flags,
        "settings": {
            k: run["settings"][k]
            for k in ("dropout_rate", "attention_dropout_rate", "learning_rate_scale",
                      "warmup_steps", "tokens_per_batch", "time_limit_minutes",
                      "cooldown_fraction")
            if k in run["settings"]
        },
        "cooldown": run.get("cooldown"),
        "model": kept_model(run),
        "averaging": averaging_summary(run),
        "parameters": run.get("parameters"),
        "epochs": run["epochs_done"],
        "train_minutes": round(run["train_seconds"] / 60, 1),
        "best_epoch": run["best_epoch"],
        "best_val_loss": round(run["best_val_loss"], 4),
        "train_loss_by_epoch": loss_by_epoch(out, "loss"),
        "val_loss_by_epoch": loss_by_epoch(out, "val_loss"),
        "val_bleu": {
            name: {k: v for k, v in s.items() if k in ("sacrebleu", "bleu_lc_tok", "decode_seconds")}
            for name, s in scores.items()
        },
        "cpu": cpu_info(),
    }, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
