"""Real-data benchmark: German -> English on Multi30k, on this machine.

Trains (or resumes, or reuses a finished) run in --out with the library's
`stageshow train` code, the model selected by validation loss, then scores
test_2016_flickr with greedy decoding and beam search. Prints one JSON line.

    python benchmarks/multi30k.py --data-dir ../shared/data/multi30k --out runs/m30k
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# The run's settings are `stageshow train`'s defaults (the published
# anchor's shape: 3 + 3 layers, d_model 256, 8 heads, d_ff 512; one shared
# 6000-piece vocabulary; ~2048-token batches; the learning rate peaking near
# 1e-3 after 600 steps), with room for 40 epochs inside the time limit.
EPOCHS = 40


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "multi30k"),
    )
    parser.add_argument("--out", default=os.path.join(HERE, "runs", "multi30k"))
    parser.add_argument("--time-limit-minutes", type=float, default=45.0)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=0.6)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.evaluation import bleu_scores
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.training.run import DEFAULT_SETTINGS
    from keras_stageshow.training.run import train_translation_run

    train = load_multi30k("train", data_dir=args.data_dir)
    val = load_multi30k("val", data_dir=args.data_dir)
    test_source, test_reference = load_multi30k(
        "test_2016_flickr", data_dir=args.data_dir
    )
    run = train_translation_run(
        args.out,
        train,
        val,
        data_description="multi30k de-en",
        verbose=2 if args.quiet else 1,
        **{
            **DEFAULT_SETTINGS,
            "epochs": EPOCHS,
            "time_limit_minutes": args.time_limit_minutes,
        },
    )
    translator = Translator.load(args.out)
    result = {
        "benchmark": "multi30k_de_en",
        "parameters": run["parameters"],
        "epochs": run["epochs_done"],
        "best_epoch": run["best_epoch"],
        "train_seconds": run["train_seconds"],
        "train_target_tokens_per_second": round(
            run["train_data"]["target_tokens"] * run["epochs_done"]
            / run["train_seconds"]
        ),
        "source_padding": run["train_data"]["source_padding"],
        "target_padding": run["train_data"]["target_padding"],
        "best_val_loss": round(run["best_val_loss"], 4),
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
        start = time.time()
        hypotheses = translator.translate(test_source, batch_size=64, **options)
        seconds = time.time() - start
        scores = bleu_scores(hypotheses, test_reference)
        result[f"{name}_sacrebleu"] = scores["sacrebleu"]
        result[f"{name}_bleu_lc_tok"] = scores["bleu_lowercased_tokenized"]
        result[f"{name}_decode_seconds"] = round(seconds, 1)
        if name == "greedy":
            result["examples"] = [
                {"source": s, "greedy": h, "reference": r}
                for s, h, r in list(zip(test_source, hypotheses, test_reference))[:3]
            ]
    result["sacrebleu_signature"] = scores["sacrebleu_signature"]
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
