"""Dropout: `keras_stageshow.layers.dropout.Dropout` against
`keras.layers.Dropout`, side by side in one process, in float32 and
`mixed_bfloat16`.

1. Speed: the 17 dropouts of `stageshow train`'s default step (3 + 3 layers:
   the two embeddings' and every sub-layer output's; attention dropout is off
   by default), each on a (64, 32, 256) activation (the default
   2,048-token batch, d_model 256), chained and differentiated in one
   `tf.function` (forward and backward, as in training); the contenders take
   turns, median over rounds, milliseconds per step.
2. What each draws: on a tensor of ones (2**20 elements, a few draws), the
   fraction of elements dropped and the mean of the result, whose
   expectation is 1 (a dropout that scales kept values by the wrong factor
   shifts it).

Prints one JSON line.

    python benchmarks/dropout.py [--rate 0.1] [--rounds 15]

`--smoke` (CI): a (4, 8, 16) activation, 2 rounds, 2**12 ones.
"""

import argparse

from common import alternate  # also turns on oneDNN before TensorFlow loads
from common import cpu_info
from common import median
from common import onednn_enabled
from common import parse_args
from common import print_result

POLICIES = ("float32", "mixed_bfloat16")
IMPLEMENTATIONS = ("keras", "keras_stageshow")
# The default step's dropouts: each embedding's, and every sub-layer
# output's (2 a layer in the encoder's 3, 3 a layer in the decoder's 3).
DEFAULT_STEP_DROPOUTS = 2 + 3 * 2 + 3 * 3


def make_dropout(implementation, rate, policy, seed):
    import keras

    from keras_stageshow.layers.dropout import Dropout

    if implementation == "keras":
        return keras.layers.Dropout(rate, seed=seed, dtype=policy)
    return Dropout(rate, seed=seed, dtype=policy)


def step_function(layers, shape, dtype):
    """A compiled forward and backward pass through `layers` in a chain."""
    import tensorflow as tf

    x = tf.Variable(tf.random.normal(shape, dtype=tf.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = tf.cast(x, dtype)
            for layer in layers:
                y = layer(y, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        return tape.gradient(loss, x)

    return step


def statistics_of(layer, dtype, size, draws):
    """(fraction dropped, mean of the result) on ones, over `draws` calls."""
    import tensorflow as tf

    ones = tf.ones((size,), dtype)
    dropped, total = 0.0, 0.0
    for _ in range(draws):
        y = tf.cast(layer(ones, training=True), tf.float64)
        dropped += float(tf.reduce_mean(tf.cast(y == 0, tf.float64)))
        total += float(tf.reduce_mean(y))
    return round(dropped / draws, 5), round(total / draws, 5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps-per-turn", type=int, default=5)
    parser.add_argument("--shape", default="64,32,256", help="batch,length,d_model")
    parser.add_argument("--ones", type=int, default=2**20)
    parser.add_argument("--draws", type=int, default=8)
    args = parse_args(
        parser, argv, rounds=2, steps_per_turn=1, shape="4,8,16", ones=2**12, draws=2
    )
    shape = tuple(int(n) for n in args.shape.split(","))

    import keras

    steps, stats = {}, {}
    for policy in POLICIES:
        dtype = keras.DTypePolicy(policy).compute_dtype
        for implementation in IMPLEMENTATIONS:
            key = f"{implementation}/{policy}"
            layers = [
                make_dropout(implementation, args.rate, policy, seed)
                for seed in range(DEFAULT_STEP_DROPOUTS)
            ]
            step = step_function(layers, shape, dtype)
            step()  # trace

            def turn(step=step):
                for _ in range(args.steps_per_turn):
                    step().numpy()

            steps[key] = turn
            stats[key] = statistics_of(layers[0], dtype, args.ones, args.draws)

    seconds = alternate(steps, args.rounds)
    ms = {key: round(1000 * median(s) / args.steps_per_turn, 2) for key, s in seconds.items()}
    print_result({
        "benchmark": "dropout",
        "rate": args.rate,
        "shape": list(shape),
        "dropouts_per_step": DEFAULT_STEP_DROPOUTS,
        "onednn": onednn_enabled(),
        "rounds": args.rounds,
        "ms_per_step_forward_backward": ms,
        "speedup_vs_keras": {
            policy: round(ms[f"keras/{policy}"] / ms[f"keras_stageshow/{policy}"], 2)
            for policy in POLICIES
        },
        "fraction_dropped": {key: value[0] for key, value in stats.items()},
        "mean_of_ones": {key: value[1] for key, value in stats.items()},
        "cpu": cpu_info(),
    }, args)


if __name__ == "__main__":
    main()
