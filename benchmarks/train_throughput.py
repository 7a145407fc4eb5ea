"""Training throughput: keras_stageshow against the keras-hub stack and the
TensorFlow tutorial's structure, side by side in one process.

`model.fit` in float32 (or `--dtype-policy mixed_bfloat16`), d_model 256,
8 heads, d_ff 1024, 3 + 3 layers, vocabulary 8000 (or the paper's base size
with --size base, or `stageshow train`'s default model and vocabulary with
--size recipe), batch 64, source and target length 32, random ids without
padding. Each model runs with
`jit_compile` off and on; the six contenders take turns, a few steps each, in
a rotating order, and the median over rounds is reported (the peers at their
best of jit on/off). Step times are read inside `fit` by a batch-end
callback (the steps after each turn's first). A seventh and eighth
contender, our model compiled with Keras's own `Adam` instead of the
default `FusedAdam`, measure what the fused update gives. Also measures the
machine's matmul peak in the policy's compute dtype in the same run and the
fraction of it that the model's counted FLOPs reach. Prints one
JSON line.

    python benchmarks/train_throughput.py [--size small|base|recipe] [--steps 4] [--rounds 7]
        [--dtype-policy float32|mixed_bfloat16]

`--smoke` (CI): a tiny model (`common.SMOKE_SIZE`, vocabulary 100), batch 4,
length 8, one round of 2 steps per contender with no warm-up `fit`, jit on
for ours only, a 64 x 64 matmul peak.
"""

import argparse

from common import BATCH  # also turns on oneDNN before TensorFlow loads
from common import LENGTH
from common import RECIPE_SIZE
from common import SIZES
from common import SMOKE_BATCH
from common import SMOKE_LENGTH
from common import VOCAB
from common import alternate
from common import cpu_info
from common import fit_step_seconds
from common import matmul_peak_gflops
from common import median
from common import model_size
from common import onednn_enabled
from common import parse_args
from common import print_result
from common import random_batch
from common import training_flops_per_target_token

NAMES = ("keras_stageshow", "keras_hub", "tutorial")
# Our model with Keras's Adam: what `FusedAdam` (the default) changes.
KERAS_ADAM = "keras_stageshow_with_keras_adam"
MODELS = (*NAMES, KERAS_ADAM)


def make_model(name, size, jit, vocab=VOCAB):
    import keras_stageshow as ks
    from peers.keras_hub_stack import compile_peer
    from peers.keras_hub_stack import keras_hub_translator
    from peers.tutorial import TutorialTransformer

    if name in ("keras_stageshow", KERAS_ADAM):
        import keras

        model = ks.Transformer(vocab, vocab, max_length=128, **size)
        optimizer = None  # the default: FusedAdam on the paper's schedule
        if name == KERAS_ADAM:
            schedule = ks.TransformerSchedule(size["d_model"], 4000)
            optimizer = keras.optimizers.Adam(schedule, 0.9, 0.98, 1e-9)
        model.compile(optimizer=optimizer, jit_compile=jit)
        return model
    if name == "keras_hub":
        return compile_peer(keras_hub_translator(vocab, max_length=128, **size), jit)
    return compile_peer(TutorialTransformer(vocab, **size), jit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", choices=sorted((*SIZES, RECIPE_SIZE)), default="small",
        help=f"{RECIPE_SIZE}: stageshow train's default model and vocabulary",
    )
    parser.add_argument("--steps", type=int, default=4, help="steps per turn")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--length", type=int, default=LENGTH)
    parser.add_argument(
        "--dtype-policy", default="float32", choices=("float32", "mixed_bfloat16"),
        help="every contender's Keras dtype policy (stageshow train's default "
        "on a CPU with AVX-512 BF16 is mixed_bfloat16)",
    )
    args = parse_args(
        parser, argv, steps=2, rounds=1, batch=SMOKE_BATCH, length=SMOKE_LENGTH
    )

    import keras

    keras.config.set_dtype_policy(args.dtype_policy)
    size, vocab = model_size(args, args.size)
    data = random_batch(args.batch, args.length, args.length, vocab=vocab)
    models = {}
    for name in MODELS:
        # A smoke run compiles one XLA step, ours (each costs seconds).
        for jit in (False, True) if name == NAMES[0] or not args.smoke else (False,):
            keras.utils.set_random_seed(0)
            model = make_model(name, size, jit, vocab)
            if not args.smoke:
                model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace
            models[f"{name}/jit_{'on' if jit else 'off'}"] = model

    def turn(model):
        return lambda: fit_step_seconds(model, data, args.steps)

    seconds = alternate({key: turn(m) for key, m in models.items()}, args.rounds)
    peak = matmul_peak_gflops(
        dtype=keras.DTypePolicy(args.dtype_policy).compute_dtype, smoke=args.smoke
    )
    tokens = args.batch * args.length
    rate = {key: tokens / median(s) for key, s in seconds.items()}
    per_model = {name: {} for name in MODELS}  # name -> "jit_off"/"jit_on" -> rate
    for key, value in rate.items():
        name, jit = key.split("/")
        per_model[name][jit] = round(value)
    best = {name: max(per_model[name].values()) for name in per_model}
    faster_peer = max(NAMES[1:], key=best.get)
    flops = training_flops_per_target_token(
        vocab=vocab, source_len=args.length, target_len=args.length, **size
    )
    print_result({
        "benchmark": "train_throughput_fp32" if args.dtype_policy == "float32"
        else f"train_throughput_{args.dtype_policy}",
        "config": {**size, "vocab": vocab, "batch": args.batch, "length": args.length},
        "dtype_policy": args.dtype_policy,
        "onednn": onednn_enabled(),
        "rounds": args.rounds,
        "steps_per_turn": args.steps,
        "target_tokens_per_second": per_model,
        "faster_peer": faster_peer,
        "speedup_vs_faster_peer": round(best["keras_stageshow"] / best[faster_peer], 2),
        "speedup_vs_each_peer": {
            name: round(best["keras_stageshow"] / best[name], 2) for name in NAMES[1:]
        },
        "fused_adam_speedup": {
            jit: round(per_model["keras_stageshow"][jit] / per_model[KERAS_ADAM][jit], 2)
            for jit in per_model[KERAS_ADAM]
        },
        "training_gflop_per_target_token": round(flops / 1e9, 4),
        "matmul_peak_gflops": peak,
        "model_gflops": round(best["keras_stageshow"] * flops / 1e9, 1),
        "fraction_of_matmul_peak": round(
            best["keras_stageshow"] * flops / 1e9 / peak["tensorflow"], 3
        ),
        "cpu": cpu_info(),
    }, args)


if __name__ == "__main__":
    main()
