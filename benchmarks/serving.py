"""Serving benchmark: the exported SavedModel against `Translator` in Python.

Exports a trained RUN_DIR (`stageshow export`'s code) twice, as TF Serving
gets it by default (no XLA ops) and with the opt-in `jit_compile=True`,
loads both with `tf.saved_model.load` and times, side by side in one process
and interleaved call by call, the same decoding all three ways on
Multi30k test_2016_flickr sentences:

- latency: one sentence per call (median and 90th percentile, ms);
- throughput: batches of 32 sentences (sentences per second);
- agreement: the share of translations that are identical.

- per-step cost: greedy ms per sentence at 16, 64 and 128 new tokens (batch
  1 and 32), on a model of the same shape with fresh weights (it never
  votes the end token early, so every sentence runs exactly that many
  steps), exported with `max_new_tokens` set to each length.

Both are measured in their steady state (a first, unreported pass warms
them up, so the library's per-shape tracing is not counted).

Prints one JSON line. Ratios above 1 mean the SavedModel is faster than
Python (which decodes with XLA).

    python benchmarks/serving.py --model runs/multi30k --data-dir ../shared/data/multi30k

`--smoke` (CI): the committed fixture run (tests/fixtures/main_run), 2
single calls, one batch of each strategy (beam 2), one pass (no warm-up
pass), a sweep at 4 new tokens and batch 1 without the XLA export, timed
once.
"""

import argparse
import os
import statistics
import tempfile
import time

import common

HERE = os.path.dirname(os.path.abspath(__file__))
# The SavedModels measured: name, `jit_compile`.
EXPORTS = (("saved_model", False), ("saved_model_xla", True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=not common.smoke_requested(argv), help="a RUN_DIR"
    )
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "multi30k"),
    )
    parser.add_argument("--single", type=int, default=30, help="one-sentence calls")
    parser.add_argument("--batches", type=int, default=6, help="batches of 32")
    parser.add_argument("--beam-batches", type=int, default=3)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument(
        "--lengths", default="16,64,128", help="new tokens for the per-step sweep"
    )
    # The smoke run reads test_2016_flickr whole: its texts start at 100.
    args = common.parse_args(
        parser, argv, smoke_data=False, model=common.FIXTURE_RUN, single=2,
        batches=1, beam_batches=1, num_beams=2, lengths="4",
    )

    import tensorflow as tf

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.serving import export_for_serving

    source, _ = load_multi30k("test_2016_flickr", data_dir=args.data_dir)
    translator = Translator.load(args.model)
    with tempfile.TemporaryDirectory() as base:
        runners = {"python": translator_runner(translator, args.num_beams)}
        export_seconds, size_mb = {}, {}
        for name, jit in EXPORTS:
            start = time.perf_counter()
            path = export_for_serving(
                translator, os.path.join(base, name), num_beams=args.num_beams,
                jit_compile=jit,
            )
            export_seconds[name] = round(time.perf_counter() - start, 1)
            size_mb[name] = round(common.folder_bytes(path) / 2**20, 1)
            runners[name] = saved_model_runner(tf.saved_model.load(path))

        def measure():
            """Each call runs every contender in turn on the same texts."""
            latency = {name: [] for name in runners}
            same = dict.fromkeys(runners, 0)
            total = 0
            for text in source[100 : 100 + args.single]:
                outputs = {}
                for name, run in runners.items():
                    start = time.perf_counter()
                    outputs[name] = run([text])
                    latency[name].append(time.perf_counter() - start)
                for name in runners:
                    same[name] += outputs[name] == outputs["python"]
                total += 1
            throughput = {}
            for strategy, batches in (
                ("greedy", args.batches), ("beam", args.beam_batches)
            ):
                seconds = dict.fromkeys(runners, 0.0)
                for b in range(batches):
                    texts = source[200 + 32 * b : 200 + 32 * (b + 1)]
                    outputs = {}
                    for name, run in runners.items():
                        start = time.perf_counter()
                        outputs[name] = run(texts, strategy)
                        seconds[name] += time.perf_counter() - start
                    for name in runners:
                        same[name] += sum(
                            a == b for a, b in zip(outputs[name], outputs["python"])
                        )
                    total += len(texts)
                throughput[strategy] = {
                    k: round(32 * batches / v, 1) for k, v in seconds.items()
                }
            return latency, throughput, same, total

        # The first pass warms all up: the library traces its decoding loop
        # once per shape bucket, the XLA export compiles once per bucket, and
        # TensorFlow optimizes each graph on its first calls. The second pass
        # is the steady state that is reported.
        if not args.smoke:
            measure()
        latency, throughput, same, total = measure()
        per_length = length_sweep(
            translator, source, [int(n) for n in args.lengths.split(",")], base,
            # The XLA export's own path is the one measured above.
            **(
                {"batches": (1,), "repeats": 1, "exports": EXPORTS[:1]}
                if args.smoke else {}
            ),
        )

    median = {k: round(1000 * statistics.median(v), 1) for k, v in latency.items()}
    p90 = {
        k: round(1000 * statistics.quantiles(v, n=10)[8], 1)
        for k, v in latency.items()
    }

    def speedups(figures, higher_is_better):
        python = figures["python"]
        return {
            name: round(value / python if higher_is_better else python / value, 2)
            for name, value in figures.items()
            if name != "python"
        }

    common.print_result(
        {
            "benchmark": "serving",
            "model": os.path.abspath(args.model),
            "parameters": translator.model.count_params(),
            "export_seconds": export_seconds,
            "saved_model_mb": size_mb,
            "latency_1_sentence_median_ms": median,
            "latency_1_sentence_p90_ms": p90,
            "latency_speedup": speedups(median, False),
            "greedy_batch32_sentences_per_second": throughput["greedy"],
            "greedy_batch32_speedup": speedups(throughput["greedy"], True),
            f"beam{args.num_beams}_batch32_sentences_per_second": throughput["beam"],
            "beam_batch32_speedup": speedups(throughput["beam"], True),
            "identical_translations": {
                name: f"{same[name]}/{total}" for name in runners if name != "python"
            },
            "greedy_ms_per_sentence_by_new_tokens": per_length,
            "cpu": common.cpu_info(),
        },
        args,
    )


def translator_runner(translator, num_beams):
    def run(texts, strategy="greedy"):
        options = {"num_beams": num_beams} if strategy == "beam" else {}
        return translator.translate(texts, strategy=strategy, **options)

    return run


def saved_model_runner(served):
    import tensorflow as tf

    signatures = {
        "greedy": served.signatures["serving_default"],
        "beam": served.signatures["beam_search"],
    }

    def run(texts, strategy="greedy"):
        out = signatures[strategy](text=tf.constant(texts))["translation"].numpy()
        return [t.decode("utf-8") for t in out]

    return run


def length_sweep(
    translator, source, lengths, base, batches=(1, 32), repeats=3, exports=EXPORTS
):
    """Greedy ms per sentence at each number of new tokens and batch size,
    Python (XLA) and the `exports`, on fresh weights (the best of `repeats`
    timed calls)."""
    import tensorflow as tf

    from keras_stageshow.models.transformer import Transformer
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.serving import export_for_serving

    # `from_config` returns the model built, with fresh weights.
    model = Transformer.from_config(translator.model.get_config())
    fresh = Translator(model, translator.preprocessor)
    results = {}
    for new_tokens in lengths:
        runs = {
            "python": lambda texts: fresh.translate(texts, max_new_tokens=new_tokens)
        }
        for name, jit in exports:
            path = export_for_serving(
                fresh, os.path.join(base, f"sweep{new_tokens}_{name}"),
                max_new_tokens=new_tokens, jit_compile=jit,
            )
            signature = tf.saved_model.load(path).signatures["serving_default"]
            runs[name] = lambda texts, signature=signature: signature(
                text=tf.constant(texts)
            )
        row = {}
        for batch in batches:
            texts = source[300 : 300 + batch]
            for name, run in runs.items():
                seconds = common.best_seconds(lambda: run(texts), repeats)
                row[f"{name}/batch_{batch}"] = round(1000 * seconds / batch, 2)
        results[str(new_tokens)] = row
    return results


if __name__ == "__main__":
    main()
