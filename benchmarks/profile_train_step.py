"""Where a training step's time goes: a per-op breakdown from the TensorFlow
profiler, for keras_stageshow and the two peers.

Each model (fp32 unless --dtype-policy, jit off, the issue's configuration
unless --size: `recipe` is `stageshow train`'s default model and vocabulary)
trains a few steps, then --steps + 1 steps under `tf.profiler.experimental`
(the wall time is that of the steps after the first, read inside `fit`); the
trace's op events on TensorFlow's compute threads are summed by op type, and
by the part of the step they belong to (the loss and its gradient, the
optimizer's update, the model forward and backward, the rest: the metric and
what TensorFlow's graph optimizer hoisted out of a scope). Op time is summed
over the two inter-op threads, so it can exceed the step's wall time. Prints
one JSON line: wall seconds per step, op milliseconds per step by type (the
top --top) and by part, and the share of op time in matrix multiplies.

    python benchmarks/profile_train_step.py [--steps 3] [--top 15]
        [--models keras_stageshow,keras_stageshow_with_keras_adam]
        [--size small|base|recipe] [--dtype-policy float32|mixed_bfloat16]

`--smoke` (CI): a tiny model (`common.SMOKE_SIZE`, vocabulary 100), batch 4,
length 8, 2 profiled steps with no warm-up `fit`, the matmul shapes and
peak timed once at that size.
"""

import argparse
import collections
import glob
import shutil
import tempfile

from common import RECIPE_SIZE  # also turns on oneDNN before TensorFlow loads
from common import SIZES
from common import batch_shape
from common import best_seconds
from common import fit_step_seconds
from common import matmul_peak_gflops
from common import model_size
from common import onednn_enabled
from common import parse_args
from common import print_result
from common import random_batch
from train_throughput import MODELS
from train_throughput import NAMES
from train_throughput import make_model


def step_part(event_name):
    """The part of a `fit` step an op event belongs to, by its name scope."""
    if "compile_loss/" in event_name:
        return "loss"
    if event_name.endswith(":ResourceApplyAdam") or "/optimizer/" in event_name:
        return "optimizer"
    if "/transformer" in event_name or event_name.startswith("transformer"):
        return "model"
    return "other"


def op_events(logdir):
    """`(event name, milliseconds)` of each op event on TensorFlow's compute
    threads in the xplane under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id]
                if name.split(":")[-1] == "Process":  # the executor's wrapper
                    continue
                yield name, event.duration_ps / 1e9


def op_milliseconds(logdir, steps):
    """op type -> (milliseconds per step, calls per step) from an xplane."""
    totals, calls = collections.Counter(), collections.Counter()
    for name, ms in op_events(logdir):
        op = name.split(":")[-1]
        totals[op] += ms / steps
        calls[op] += 1 / steps
    return totals, calls


def part_milliseconds(logdir, steps):
    """`step_part` -> milliseconds per step, from an xplane."""
    parts = collections.Counter()
    for name, ms in op_events(logdir):
        parts[step_part(name)] += ms / steps
    return parts


def matmul_shape_gflops(size, vocab, tokens, repeats=20, dtype="float32"):
    """GFLOP/s of the step's own matmul shapes in `dtype`, one at a time
    (rows = the batch's 2048 tokens): how close to the 4096-square peak each
    can get."""
    import tensorflow as tf

    d, d_ff = size["d_model"], size["d_ff"]
    shapes = {
        "qkv": (tokens, d, 3 * d),
        "output_or_query": (tokens, d, d),
        "ffn_in": (tokens, d, d_ff),
        "ffn_out": (tokens, d_ff, d),
        "voting": (tokens, d, vocab),
    }
    result = {}
    for name, (m, k, n) in shapes.items():
        a = tf.random.normal((m, k), dtype=dtype)
        b = tf.random.normal((k, n), dtype=dtype)
        best = best_seconds(lambda: tf.matmul(a, b).numpy(), repeats)
        result[f"{name} {m}x{k}x{n}"] = round(2 * m * k * n / best / 1e9, 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--models", default=",".join(NAMES),
        help=f"comma-separated, of {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--size", choices=sorted((*SIZES, RECIPE_SIZE)), default="small",
        help=f"{RECIPE_SIZE}: stageshow train's default model and vocabulary",
    )
    parser.add_argument(
        "--dtype-policy", default="float32", choices=("float32", "mixed_bfloat16"),
        help="every model's Keras dtype policy (stageshow train's default on "
        "a CPU with AVX-512 BF16 is mixed_bfloat16)",
    )
    args = parse_args(parser, argv, steps=1)
    models = args.models.split(",")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {MODELS}")

    import keras
    import tensorflow as tf

    keras.config.set_dtype_policy(args.dtype_policy)
    compute_dtype = keras.DTypePolicy(args.dtype_policy).compute_dtype
    size, vocab = model_size(args, args.size)
    batch, length = batch_shape(args)
    data = random_batch(batch, length, length, vocab=vocab)
    results = {}
    for name in models:
        keras.utils.set_random_seed(0)
        model = make_model(name, size, jit=False, vocab=vocab)
        if not args.smoke:
            model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
        logdir = tempfile.mkdtemp(prefix="stageshow-profile-")
        tf.profiler.experimental.start(logdir)
        wall = fit_step_seconds(model, data, args.steps + 1)
        tf.profiler.experimental.stop()
        totals, calls = op_milliseconds(logdir, args.steps + 1)
        parts = part_milliseconds(logdir, args.steps + 1)
        shutil.rmtree(logdir, ignore_errors=True)
        op_total = sum(totals.values())
        matmul = sum(v for k, v in totals.items() if "MatMul" in k or "Einsum" in k)
        results[name] = {
            "wall_seconds_per_step_profiled": round(wall, 3),
            "op_ms_per_step": round(op_total),
            "matmul_share_of_op_time": round(matmul / op_total, 3),
            "op_ms_per_step_by_part": {
                part: round(ms, 1) for part, ms in parts.most_common()
            },
            "top_ops_ms_per_step": {
                op: [round(ms, 1), round(calls[op])]
                for op, ms in totals.most_common(args.top)
            },
        }
        del model
        keras.backend.clear_session()
    print_result({
        "benchmark": "profile_train_step",
        "config": {**size, "vocab": vocab, "batch": batch, "length": length,
                   "jit": False},
        "dtype_policy": args.dtype_policy,
        "onednn": onednn_enabled(),
        "note": "top_ops_ms_per_step: op type -> [ms per step, calls per step]",
        "matmul_gflops_by_shape": matmul_shape_gflops(
            size, vocab, batch * length, repeats=1 if args.smoke else 20,
            dtype=compute_dtype,
        ),
        "matmul_peak_gflops": matmul_peak_gflops(dtype=compute_dtype, smoke=args.smoke),
        **results,
    }, args)


if __name__ == "__main__":
    main()
