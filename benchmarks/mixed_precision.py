"""Mixed precision: keras_stageshow's training throughput and loss under
`mixed_bfloat16` and `mixed_float16` against float32, in one process.

1. Throughput: the issue's configuration (d_model 256, 8 heads, d_ff 1024,
   3 + 3 layers, vocabulary 8000, batch 64, length 32, random ids), the three
   policies taking turns in `model.fit`, median over rounds. The bf16 and fp16
   matmul peaks of this machine are measured alongside.
2. Loss: the same model, with `stageshow train`'s recipe (warmup 600 steps,
   learning-rate scale 0.4), trained for --steps steps (200) on Multi30k
   (German -> English, a shared 8000-piece vocabulary, batches of ~64
   sentences from the library's length-bucketed pipeline) from the same
   initial weights on the same batches under each policy. Reports each
   policy's validation loss after those steps and its relative difference
   from float32's, the mean training loss, whether any step's loss was NaN,
   and, for float16, that Keras wrapped the optimizer in a
   `LossScaleOptimizer`.

Prints one JSON line.

    python benchmarks/mixed_precision.py --data-dir ../shared/data/multi30k [--steps 200]

`--smoke` (CI): float32 and mixed_float16 (loss scaling) only, a tiny model
(`common.SMOKE_SIZE`, vocabulary 100), batch 4, length 8, one round of 2
steps per policy with no warm-up `fit`, 64 x 64 matmul peaks; then 2 steps
on 40 Multi30k pairs.
"""

import argparse

from common import MULTI30K_DIR  # also turns on oneDNN before TensorFlow loads
from common import alternate
from common import batch_shape
from common import cpu_info
from common import fit_step_seconds
from common import matmul_peak_gflops
from common import median
from common import model_size
from common import onednn_enabled
from common import parse_args
from common import print_result
from common import random_batch

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def new_model(policy, size, vocab):
    """The model and training recipe of `stageshow train` (its warmup and
    learning-rate scale: the rate reaches ~4e-4 by step 200)."""
    import keras

    import keras_stageshow as ks
    from keras_stageshow.training.recipe import DEFAULT_SETTINGS

    keras.utils.set_random_seed(0)
    model = ks.Transformer(vocab, vocab, max_length=128, dtype=policy, **size)
    model.build(((None, None), (None, None)))
    model.compile(
        warmup_steps=DEFAULT_SETTINGS["warmup_steps"],
        learning_rate_scale=DEFAULT_SETTINGS["learning_rate_scale"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=MULTI30K_DIR,
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-turn", type=int, default=4)
    parser.add_argument(
        "--skip-throughput", action="store_true", help="only the loss comparison"
    )
    parser.add_argument(
        "--policies", default=",".join(POLICIES),
        help="float32 first, then those to compare with it",
    )
    args = parse_args(
        parser, argv, steps=2, rounds=1, steps_per_turn=2,
        policies="float32,mixed_float16",  # bfloat16 takes the same path
    )
    policies = args.policies.split(",")
    if policies[0] != "float32" or not set(policies) <= set(POLICIES):
        parser.error(f"--policies: float32 first, then some of {POLICIES[1:]}")

    import keras
    import numpy as np

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.tokenizers import SubwordTokenizer

    size, vocab = model_size(args)
    batch, length = batch_shape(args)

    # 1. Throughput.
    models = {policy: new_model(policy, size, vocab) for policy in policies}
    initial = models["float32"].get_weights()  # before any training
    rate, peaks = {}, {}
    if not args.skip_throughput:
        data = random_batch(batch, length, length, vocab=vocab)
        for model in models.values():
            if not args.smoke:
                model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)

        def turn(model):
            return lambda: fit_step_seconds(model, data, args.steps_per_turn)

        seconds = alternate({p: turn(m) for p, m in models.items()}, args.rounds)
        rate = {p: batch * length / median(s) for p, s in seconds.items()}
        peaks = {
            dtype: matmul_peak_gflops(n=2048, dtype=dtype, smoke=args.smoke)["tensorflow"]
            for dtype in ("float32", "bfloat16", "float16")
            if dtype == "float32" or f"mixed_{dtype}" in policies
        }

    # 2. Loss after --steps steps on real text, same weights, same batches.
    german, english = load_multi30k("train", data_dir=args.data_dir)
    val_german, val_english = load_multi30k("val", data_dir=args.data_dir)
    tokenizer = SubwordTokenizer.train([german, english], vocabulary_size=vocab)
    train = make_translation_dataset(
        german, english, tokenizer, tokenizer, max_length=128,
        tokens_per_batch=64 * 20, seed=0, epoch=0,
    ).repeat()
    val = make_translation_dataset(
        val_german, val_english, tokenizer, tokenizer, max_length=128,
        tokens_per_batch=64 * 20, shuffle=False,
    )
    losses = {}
    for policy in policies:
        model = new_model(policy, size, vocab)
        model.set_weights(initial)
        running = []  # Keras's running mean of the epoch's loss, per step
        model.fit(
            train,
            steps_per_epoch=args.steps,
            epochs=1,
            verbose=0,
            callbacks=[
                keras.callbacks.LambdaCallback(
                    on_train_batch_end=lambda batch, logs: running.append(
                        float(logs["loss"])
                    )
                )
            ],
        )
        losses[policy] = {
            "train_loss_mean": round(running[-1], 4),
            # A NaN step leaves the running mean NaN from then on.
            "any_nan": bool(np.isnan(running).any()),
            "val_loss": round(float(model.evaluate(val, verbose=0)[0]), 4),
            "loss_scaling": isinstance(
                model.optimizer, keras.optimizers.LossScaleOptimizer
            ),
        }
    reference = losses["float32"]["val_loss"]
    for policy in policies:
        losses[policy]["val_loss_relative_to_float32"] = round(
            losses[policy]["val_loss"] / reference - 1, 4
        )

    print_result({
        "benchmark": "mixed_precision",
        "config": {**size, "vocab": vocab, "batch": batch, "length": length},
        "onednn": onednn_enabled(),
        "target_tokens_per_second": {p: round(r) for p, r in rate.items()},
        "speedup_vs_float32": {
            p: round(rate[p] / rate["float32"], 2) for p in rate if p != "float32"
        },
        "matmul_2048_gflops": peaks,
        "cpu_has_avx512_bf16": _cpu_flag("avx512_bf16"),
        "cpu_has_amx_bf16": _cpu_flag("amx_bf16"),
        "cpu": cpu_info(),
        f"loss_after_{args.steps}_steps_multi30k": losses,
    }, args)


def _cpu_flag(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return None


if __name__ == "__main__":
    main()
