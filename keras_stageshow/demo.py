"""The demo (`stageshow demo`): a small translator trained offline, in a
few minutes, on a generated language with another word order
(`datasets/synthetic.py`), then scored on held-out sentences. Its results
go to the RUN_DIR's `summary.json` and to stdout."""

import json
import os

from keras_stageshow.datasets.synthetic import stage_language_pairs
from keras_stageshow.evaluation import bleu_scores
from keras_stageshow.evaluation import timed_translate
from keras_stageshow.files import write_json_atomically
from keras_stageshow.generation_options import DEFAULTS
from keras_stageshow.models.translator import Translator
from keras_stageshow.run_dir import SUMMARY_FILE
from keras_stageshow.training.run import train_translation_run

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
# Held-out sentences: validation pairs and test pairs, each generated with
# its own seed; test sentences are decoded this many at a time.
VALIDATION_PAIRS = 300
TEST_PAIRS = 200
BATCH_SIZE = 64


def run_demo(out="stageshow_demo", examples=8000, epochs=8, seed=0):
    """Trains the demo's translator into the RUN_DIR `out`, shows what it
    learned, and returns its summary (also written to `out/summary.json`
    and printed as the last JSON line).

    Args:
        out: the RUN_DIR (a second call resumes or keeps it).
        examples: int, training pairs generated.
        epochs: int, epochs to train.
        seed: int, seeds the generated pairs and the training.
    """
    print(
        "The task: translate the stage language into English. The stage "
        "language puts the verb last and adjectives after their noun:\n"
        "  stage:   ein hundo klein im de parko de ballo rot siehta\n"
        "  English: a small dog sees the red ball in the park\n"
    )
    train = stage_language_pairs(examples, seed=seed)
    val = stage_language_pairs(VALIDATION_PAIRS, seed=seed + 1)
    test_source, test_target = stage_language_pairs(TEST_PAIRS, seed=seed + 2)
    run = train_translation_run(
        out,
        train,
        val,
        data_description=f"stage language, {examples} pairs (generated)",
        verbose=2,
        epochs=epochs,
        seed=seed,
        **DEMO_SETTINGS,
    )
    translator = Translator.load(out)
    greedy, greedy_seconds = timed_translate(
        translator, test_source, batch_size=BATCH_SIZE
    )
    beam = translator.translate(
        test_source, strategy="beam", num_beams=DEFAULTS.num_beams,
        batch_size=BATCH_SIZE,
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
        "held_out_exact_match_greedy": exact_match(greedy, test_target),
        f"held_out_exact_match_beam{DEFAULTS.num_beams}": exact_match(
            beam, test_target
        ),
        "held_out_bleu_greedy": bleu_scores(greedy, test_target)["sacrebleu"],
        "greedy_seconds_per_sentence": round(greedy_seconds / len(test_source), 4),
        "run_dir": os.path.abspath(out),
    }
    write_json_atomically(os.path.join(out, SUMMARY_FILE), summary)
    print(json.dumps(summary))
    print(
        f"\nTranslate more with:  stageshow translate --model {out} "
        '"ein vogo alt de bucho tragta"'
    )
    return summary


def exact_match(predictions, references):
    """The share of predictions equal to their reference, to 4 decimals."""
    return round(
        sum(p == r for p, r in zip(predictions, references)) / len(references), 4
    )
