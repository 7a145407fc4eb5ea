"""Profile of the served graph's decoding step: does a step's cost grow with
the number of steps done?

Exports a model of the RUN_DIR's shape with fresh weights (it never votes
the end token early, so a sentence runs exactly `max_new_tokens` steps) once
per length, runs the SavedModel's greedy signature under TensorFlow's
profiler, and sums the op time by op type, per decoding step. If a step's
cost does not grow with the steps done, the milliseconds per step are the
same at every length; the cache write's share shows whether it copies the
cache (split + concat, or a scatter that cannot reuse its buffer) or writes
one row (`InplaceUpdate`).

Prints one JSON line.

    python benchmarks/profile_decoding_step.py --model runs/multi30k

`--smoke` (CI): the committed fixture run (tests/fixtures/main_run), 4 new
tokens at batch 1, the wall time taken once.
"""

import argparse
import os
import tempfile

import common
from profile_train_step import op_milliseconds

# Ops that write the self-attention cache, in the old and the new graph.
CACHE_WRITE_OPS = ("InplaceUpdate", "Empty", "ConcatV2", "SplitV", "TensorScatterUpdate")
# Events on the compute threads that are not ops: the profiler's own and the
# thread pool's (counted as ops, they doubled `op_calls_per_step`).
NOT_OPS = (
    "Record", "StartRegion", "StopRegion", "ParallelFor", "MemoryAllocation",
    "MemoryDeallocation", "ExecutorDoneCallback",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=not common.smoke_requested(argv), help="a RUN_DIR"
    )
    parser.add_argument("--lengths", default="16,128")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--top", type=int, default=8)
    args = common.parse_args(
        parser, argv, model=common.FIXTURE_RUN, lengths="4", batches="1"
    )

    import tensorflow as tf

    from keras_stageshow.models.transformer import Transformer
    from keras_stageshow.models.translator import Translator
    from keras_stageshow.serving import export_for_serving

    run = Translator.load(args.model)
    # `from_config` returns the model built, with fresh weights.
    model = Transformer.from_config(run.model.get_config())
    fresh = Translator(model, run.preprocessor)
    text = "Ein Mann mit einem roten Hut fährt mit dem Fahrrad über eine Brücke."
    results = {}
    with tempfile.TemporaryDirectory() as base:
        for new_tokens in (int(n) for n in args.lengths.split(",")):
            path = export_for_serving(
                fresh, os.path.join(base, str(new_tokens)), max_new_tokens=new_tokens
            )
            signature = tf.saved_model.load(path).signatures["serving_default"]
            for batch in (int(b) for b in args.batches.split(",")):
                texts = tf.constant([text] * batch)
                wall = common.best_seconds(
                    lambda: signature(text=texts), 1 if args.smoke else 2
                )
                logdir = os.path.join(base, f"profile_{new_tokens}_{batch}")
                tf.profiler.experimental.start(logdir)
                signature(text=texts)
                tf.profiler.experimental.stop()
                totals, calls = op_milliseconds(logdir, new_tokens)
                for event in NOT_OPS:
                    totals.pop(event, None)
                    calls.pop(event, None)
                write = sum(totals[op] for op in CACHE_WRITE_OPS)
                results[f"{new_tokens}_tokens/batch_{batch}"] = {
                    "wall_ms_per_step": round(1000 * wall / new_tokens, 3),
                    "op_ms_per_step": round(sum(totals.values()), 3),
                    "op_calls_per_step": round(sum(calls.values())),
                    "cache_write_op_ms_per_step": round(write, 4),
                    "top_ops_ms_per_step": {
                        op: [round(ms, 3), round(calls[op], 1)]
                        for op, ms in totals.most_common(args.top)
                    },
                }
    common.print_result(
        {
            "benchmark": "profile_decoding_step",
            "model_config": {
                k: model.get_config()[k]
                for k in ("num_layers", "d_model", "num_heads", "d_ff")
            },
            "note": "served greedy signature, fresh weights; per decoding step; "
            "top_ops_ms_per_step: op type -> [ms, calls]",
            "by_length": results,
            "cpu": common.cpu_info(),
        },
        args,
    )


if __name__ == "__main__":
    main()
