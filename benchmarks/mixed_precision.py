"""Mixed precision: keras_stageshow's training throughput and loss under
`mixed_bfloat16` and `mixed_float16` against float32, in one process.

1. Throughput: the issue's configuration (d_model 256, 8 heads, d_ff 1024,
   3 + 3 layers, vocabulary 8000, batch 64, length 32, random ids), the three
   policies taking turns in `model.fit`, median over rounds. The bf16 and fp16
   matmul peaks of this machine are measured alongside.
2. Loss: the same model trained for --steps steps (200) on Multi30k
   (German -> English, a shared 8000-piece vocabulary, batches of ~64
   sentences from the library's length-bucketed pipeline) from the same
   initial weights on the same batches under each policy. Reports each
   policy's training loss at the end (mean of the last 20 steps) and its
   relative difference from float32's, whether any step's loss was NaN, and,
   for float16, that Keras wrapped the optimizer in a `LossScaleOptimizer`.

Prints one JSON line.

    python benchmarks/mixed_precision.py --data-dir ../shared/data/multi30k [--steps 200]
"""

import argparse
import json
import os

from common import BATCH  # also turns on oneDNN before TensorFlow loads
from common import HERE
from common import LENGTH
from common import SIZES
from common import VOCAB
from common import alternate
from common import fit_step_seconds
from common import matmul_peak_gflops
from common import median
from common import onednn_enabled
from common import random_batch

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def new_model(policy, size, warmup_steps=4000):
    import keras

    import keras_stageshow as ks

    keras.utils.set_random_seed(0)
    model = ks.Transformer(VOCAB, VOCAB, max_length=128, dtype=policy, **size)
    model.build(((None, None), (None, None)))
    model.compile(warmup_steps=warmup_steps)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.path.join(HERE, "..", "..", "shared", "data", "multi30k"),
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-turn", type=int, default=4)
    args = parser.parse_args()

    import keras
    import numpy as np

    from keras_stageshow.datasets import load_multi30k
    from keras_stageshow.datasets import make_translation_dataset
    from keras_stageshow.tokenizers import SubwordTokenizer

    size = SIZES["small"]

    # 1. Throughput.
    data = random_batch(BATCH, LENGTH, LENGTH)
    models = {policy: new_model(policy, size) for policy in POLICIES}
    for model in models.values():
        model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)

    def turn(model):
        return lambda: fit_step_seconds(model, data, args.steps_per_turn)

    seconds = alternate({p: turn(m) for p, m in models.items()}, args.rounds)
    tokens = BATCH * LENGTH
    rate = {p: tokens / median(s) for p, s in seconds.items()}
    peaks = {
        dtype: matmul_peak_gflops(n=2048, dtype=dtype)["tensorflow"]
        for dtype in ("float32", "bfloat16", "float16")
    }

    # 2. Loss after --steps steps on real text, same weights, same batches.
    german, english = load_multi30k("train", data_dir=args.data_dir)
    tokenizer = SubwordTokenizer.train([german, english], vocabulary_size=VOCAB)
    train = make_translation_dataset(
        german, english, tokenizer, tokenizer, max_length=128,
        tokens_per_batch=64 * 20, seed=0, epoch=0,
    ).repeat()
    initial = models["float32"].get_weights()
    losses = {}
    for policy in POLICIES:
        model = new_model(policy, size, warmup_steps=args.steps)
        model.set_weights(initial)
        step_losses = []
        model.fit(
            train,
            steps_per_epoch=args.steps,
            epochs=1,
            verbose=0,
            callbacks=[
                keras.callbacks.LambdaCallback(
                    on_train_batch_end=lambda batch, logs: step_losses.append(
                        float(logs["loss"])
                    )
                )
            ],
        )
        # Keras reports the running mean of the epoch; recover each step's.
        running = np.array(step_losses)
        per_step = running * np.arange(1, len(running) + 1)
        per_step[1:] -= running[:-1] * np.arange(1, len(running))
        losses[policy] = {
            "final_loss": float(per_step[-20:].mean()),
            "any_nan": bool(np.isnan(per_step).any()),
            "loss_scaling": isinstance(
                model.optimizer, keras.optimizers.LossScaleOptimizer
            ),
        }
    reference = losses["float32"]["final_loss"]
    for policy in POLICIES:
        losses[policy]["final_loss"] = round(losses[policy]["final_loss"], 4)
        losses[policy]["relative_to_float32"] = round(
            losses[policy]["final_loss"] / reference - 1, 4
        )

    print(json.dumps({
        "benchmark": "mixed_precision",
        "config": {**size, "vocab": VOCAB, "batch": BATCH, "length": LENGTH},
        "onednn": onednn_enabled(),
        "target_tokens_per_second": {p: round(r) for p, r in rate.items()},
        "speedup_vs_float32": {
            p: round(rate[p] / rate["float32"], 2) for p in POLICIES[1:]
        },
        "matmul_2048_gflops": peaks,
        "cpu_has_avx512_bf16": _cpu_flag("avx512_bf16"),
        "cpu_has_amx_bf16": _cpu_flag("amx_bf16"),
        f"loss_after_{args.steps}_steps_multi30k": losses,
    }))


def _cpu_flag(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return None


if __name__ == "__main__":
    main()
