"""int8 export benchmark: a translator quantized to int8, exported, against
the default float32 export of the same RUN_DIR.

Exports a trained RUN_DIR twice with every default (`stageshow export`'s
code): as it loads (float32), and after `translator.quantize("int8")`
(`Transformer.quantize`: the Dense and EinsumDense kernels int8, the tied
vote's embeddings float). It loads
both with `tf.saved_model.load` and measures them side by side in one
process, interleaved call by call (the order alternating), on Multi30k val:

- latency: one sentence per call (median ms, `--single` calls);
- throughput: greedy and beam (the export's 4 beams) batches of 32
  sentences (sentences per second);
- size: the SavedModel folder (MB);
- quality: BLEU on all of val (lowercased 13a-tokenized, as Multi30k
  papers report, and sacreBLEU), greedy (the `serving_default` signature,
  `--request` sentences a request) and beam (`beam_search`), and how many
  translations of the two exports are identical.

The timings are the steady state: a first, unreported pass warms both up
(TensorFlow optimizes each graph on its first calls). Ratios are int8 /
float32: below 1 is faster for latency and smaller for size, above 1 is
faster for throughput.

The decision rule (`decision` in the line): keep int8 where it pays, that
is when it loses at most 0.5 BLEU (either metric, greedy or beam) AND it is
faster (lower latency and higher greedy and beam throughput) or at most
half the size. Otherwise the float32 export stays the default, and
`stageshow export` offers no int8 flag (the case measured so far:
benchmarks/README.md).

Prints one JSON line.

    python benchmarks/int8_export.py --model runs/multi30k --data-dir ../shared/data/multi30k

`--smoke` (CI): the committed fixture run (tests/fixtures/main_run), 8 val
sentences, 2 single calls, one batch of 8, one pass (no warm-up pass).
"""

import argparse
import os
import statistics
import tempfile
import time
import warnings

import common

# The exports measured: name, `Translator.quantize` mode (None: float).
EXPORTS = (("float32", None), ("int8", "int8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=not common.smoke_requested(argv), help="a RUN_DIR"
    )
    parser.add_argument("--data-dir", default=common.MULTI30K_DIR)
    parser.add_argument("--single", type=int, default=30, help="one-sentence calls")
    parser.add_argument("--batches", type=int, default=6, help="greedy batches")
    parser.add_argument("--beam-batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--val-sentences", type=int, help="val sentences scored (default: all)"
    )
    parser.add_argument(
        "--request", type=int, default=256, help="sentences a scoring request"
    )
    args = common.parse_args(
        parser, argv, model=common.FIXTURE_RUN, single=2, batches=1,
        beam_batches=1, batch_size=8, val_sentences=8, request=4,
    )

    import tensorflow as tf

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.evaluation import bleu_scores
    from keras_stageshow.generation_options import DEFAULTS
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.serving import export_for_serving
    from serving import saved_model_runner

    source, references = load_multi30k("val", data_dir=args.data_dir)
    if args.val_sentences:
        source, references = source[: args.val_sentences], references[: args.val_sentences]
    names = [name for name, _ in EXPORTS]
    with tempfile.TemporaryDirectory() as base:
        runners, export_seconds, size_mb = {}, {}, {}
        for name, quantize in EXPORTS:
            start = time.perf_counter()
            translator = Translator.load(args.model)
            if quantize:
                with warnings.catch_warnings():
                    # One per LayerNormalization and Dropout: nothing to quantize.
                    warnings.simplefilter("ignore", UserWarning)
                    translator.quantize(quantize)
            path = export_for_serving(translator, os.path.join(base, name))
            export_seconds[name] = round(time.perf_counter() - start, 1)
            size_mb[name] = round(common.folder_bytes(path) / 2**20, 2)
            runners[name] = saved_model_runner(tf.saved_model.load(path))

        def in_turn(call, *arguments):
            """`call` on each export in turn, the order alternating; returns
            name -> (output, seconds)."""
            in_turn.calls += 1
            order = names if in_turn.calls % 2 else names[::-1]
            results = {}
            for name in order:
                start = time.perf_counter()
                output = call(runners[name], *arguments)
                results[name] = (output, time.perf_counter() - start)
            return results

        in_turn.calls = 0

        def measure():
            latency = {name: [] for name in names}
            for text in source[: args.single]:
                for name, (_, seconds) in in_turn(lambda run: run([text])).items():
                    latency[name].append(seconds)
            throughput = {}
            for strategy, batches in (("greedy", args.batches), ("beam", args.beam_batches)):
                seconds = dict.fromkeys(names, 0.0)
                for b in range(batches):
                    texts = source[args.batch_size * b : args.batch_size * (b + 1)]
                    for name, (_, s) in in_turn(lambda run: run(texts, strategy)).items():
                        seconds[name] += s
                throughput[strategy] = {
                    name: round(args.batch_size * batches / s, 1)
                    for name, s in seconds.items()
                }
            return latency, throughput

        if not args.smoke:
            measure()  # the warm-up pass
        latency, throughput = measure()

        # Quality on all of val: each strategy's translations, by request.
        translations = {name: {"greedy": [], "beam": []} for name in names}
        for strategy in ("greedy", "beam"):
            for start in range(0, len(source), args.request):
                texts = source[start : start + args.request]
                for name, (out, _) in in_turn(lambda run: run(texts, strategy)).items():
                    translations[name][strategy] += out

    bleu = {
        name: {
            strategy: common.bleu_fields(bleu_scores(hypotheses, references))
            for strategy, hypotheses in translations[name].items()
        }
        for name in names
    }
    identical = {
        strategy: "{}/{}".format(
            sum(
                a == b
                for a, b in zip(translations["int8"][strategy], translations["float32"][strategy])
            ),
            len(source),
        )
        for strategy in ("greedy", "beam")
    }
    median = {k: round(1000 * statistics.median(v), 1) for k, v in latency.items()}
    ratios = {
        "latency_1_sentence": round(median["int8"] / median["float32"], 2),
        "greedy_throughput": round(
            throughput["greedy"]["int8"] / throughput["greedy"]["float32"], 2
        ),
        "beam_throughput": round(
            throughput["beam"]["int8"] / throughput["beam"]["float32"], 2
        ),
        "saved_model_size": round(size_mb["int8"] / size_mb["float32"], 2),
    }
    bleu_lost = max(
        bleu["float32"][strategy][metric] - bleu["int8"][strategy][metric]
        for strategy in ("greedy", "beam")
        for metric in ("bleu_lc_tok", "sacrebleu")
    )
    faster = (
        ratios["latency_1_sentence"] < 1
        and ratios["greedy_throughput"] > 1
        and ratios["beam_throughput"] > 1
    )
    half_the_size = ratios["saved_model_size"] <= 0.5
    common.print_result(
        {
            "benchmark": "int8_export",
            "model": os.path.abspath(args.model),
            "val_sentences": len(source),
            "export_seconds": export_seconds,
            "saved_model_mb": size_mb,
            "latency_1_sentence_median_ms": median,
            f"greedy_batch{args.batch_size}_sentences_per_second": throughput["greedy"],
            f"beam{DEFAULTS.num_beams}_batch{args.batch_size}_sentences_per_second": (
                throughput["beam"]
            ),
            "val_bleu": bleu,
            "identical_translations": identical,
            "int8_over_float32": ratios,
            "decision": {
                "faster": faster,
                "half_the_size": half_the_size,
                "bleu_lost": round(bleu_lost, 2),
                "keep_int8": bleu_lost <= 0.5 and (faster or half_the_size),
            },
            "cpu": common.cpu_info(),
        },
        args,
    )


if __name__ == "__main__":
    main()
