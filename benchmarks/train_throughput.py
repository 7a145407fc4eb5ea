"""Training throughput: keras_stageshow against the keras-hub stack and the
TensorFlow tutorial's structure, side by side in one process.

fp32, d_model 256, 8 heads, d_ff 1024, 3 + 3 layers, vocabulary 8000, batch
64, source and target length 32 (random ids, no padding), each model with
`jit_compile` off and on, measured in alternating rounds (the best round is
kept, so a noisy neighbour hurts all alike). Also measures this machine's fp32
matmul peak with one large `tf.matmul` and reports the fraction of it that
the model's training FLOPs reach. Prints one JSON line.

    python benchmarks/train_throughput.py [--steps 8] [--rounds 2]
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

SIZE = dict(num_layers=3, d_model=256, num_heads=8, d_ff=1024)
VOCAB, BATCH, LENGTH = 8000, 64, 32


def training_flops_per_target_token(num_layers, d_model, d_ff, vocab, source_len, target_len):
    """Matrix-multiply FLOPs of one training step per target token (forward
    x 3 for the backward pass), when sources and targets are equally many."""
    d = d_model
    encoder = num_layers * (8 * d * d + 4 * d * d_ff + 4 * source_len * d)
    decoder = num_layers * (
        8 * d * d + 4 * target_len * d  # masked self-attention
        + 8 * d * d + 4 * source_len * d  # cross-attention (K, V per source token)
        + 4 * d * d_ff
    ) + 2 * d * vocab  # Voting
    return 3 * (encoder + decoder)


def matmul_peak_gflops(n=4096, repeats=5):
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="steps per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_stageshow as ks
    from benchmarks.peers.keras_hub_stack import compile_peer
    from benchmarks.peers.keras_hub_stack import keras_hub_translator
    from benchmarks.peers.tutorial import TutorialTransformer

    rng = np.random.default_rng(0)
    source = rng.integers(4, VOCAB, (BATCH, LENGTH)).astype("int32")
    target = rng.integers(4, VOCAB, (BATCH, LENGTH + 1)).astype("int32")
    data = (
        tf.data.Dataset.from_tensors(((source, target[:, :-1]), target[:, 1:]))
        .repeat()
        .prefetch(2)
    )

    def ours(jit):
        model = ks.Transformer(VOCAB, VOCAB, max_length=128, **SIZE)
        model.compile(warmup_steps=4000, jit_compile=jit)
        return model

    def keras_hub_stack(jit):
        return compile_peer(keras_hub_translator(VOCAB, max_length=128, **SIZE), jit)

    def tutorial(jit):
        return compile_peer(TutorialTransformer(VOCAB, **SIZE), jit)

    models = {}
    for name, make in (("keras_stageshow", ours), ("keras_hub", keras_hub_stack),
                       ("tutorial", tutorial)):
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            model = make(jit)
            model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace, compile
            models[(name, jit)] = model
    best = {key: 0.0 for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            seconds = time.perf_counter() - start
            best[key] = max(best[key], args.steps * BATCH * LENGTH / seconds)
    peak = matmul_peak_gflops()
    flops = training_flops_per_target_token(
        SIZE["num_layers"], SIZE["d_model"], SIZE["d_ff"], VOCAB, LENGTH, LENGTH
    )
    per_model = {
        name: {
            "jit_off": round(best[(name, False)]),
            "jit_on": round(best[(name, True)]),
        }
        for name in ("keras_stageshow", "keras_hub", "tutorial")
    }
    ours_best = max(per_model["keras_stageshow"].values())
    peer_best = max(max(per_model["keras_hub"].values()), max(per_model["tutorial"].values()))
    print(json.dumps({
        "benchmark": "train_throughput_fp32",
        "config": {**SIZE, "vocab": VOCAB, "batch": BATCH, "length": LENGTH},
        "target_tokens_per_second": per_model,
        "speedup_vs_faster_peer": round(ours_best / peer_best, 2),
        "training_gflop_per_target_token": round(flops / 1e9, 4),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_matmul_peak": round(ours_best * flops / 1e9 / peak, 3),
    }))


if __name__ == "__main__":
    main()
