"""`Dropout`: the paper's dropout with a mask drawn from 16 random bits an
element on TensorFlow, where Keras's is slower and biased in bfloat16.

Why not `keras.layers.Dropout` on TensorFlow (Keras 3.15, TensorFlow 2.21):
it calls `tf.nn.experimental.stateless_dropout`, which draws a uniform
number of the input's dtype for each element. Under `mixed_bfloat16` that is
a bfloat16 uniform, 7 random bits: the drop rate is quantised to 1/128 and
the kept values, scaled by 1/(1 - rate) rounded to bfloat16, keep 0.9967
of their expectation rather than 1 (a mean of ones after 0.1 dropout,
measured: benchmarks/dropout.py). It also costs 7% of `stageshow train`'s
default step on this project's CPUs (benchmarks/README.md section 5). Here
one Philox draw of 32 bits feeds two elements, the drop test is an integer
compare, and the drop rate is set from the scale the dtype can hold, so the
expectation is exact (`tensorflow_rate`).
On JAX and PyTorch the layer is `keras.random.dropout`, which draws float32
uniforms there.
"""

import keras

from keras_stageshow.layers.utils import check_rate

# Random bits an element: the drop rate is a multiple of 2**-16.
_BITS = 16


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Dropout(keras.layers.Layer):
    """Dropout (paper section 5.4, "residual dropout"): zeroes each element
    with probability `rate` in training and scales the others by
    1 / (1 - rate), so the expectation is the input; the identity otherwise.

    The layer every stage-show layer uses for its dropouts (`Preprocess`,
    `Adjust`, `Rehearsal`'s attention weights); `keras.layers.Dropout`'s
    arguments and results, but for the mask's random numbers on TensorFlow
    (see the module's comment). On TensorFlow the kept values are scaled by
    1 / (1 - rate) as the compute dtype rounds it, and the rate drawn is the
    multiple of 2**-16 that makes the expectation exact with that scale:
    0.1 drops 6554 / 65536 in float32 and 6461 / 65536 (0.0986) in bfloat16
    (`tensorflow_rate`).

    Args:
        rate: float in [0, 1), the fraction of elements zeroed in training.
        seed: int or None, seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: a floating-point tensor of any shape.
        training: bool, whether to drop (otherwise the input is returned).

    Example:
    >>> dropout = Dropout(0.5, seed=0)
    >>> x = np.ones((2, 4), "float32")
    >>> dropout(x, training=False).shape
    (2, 4)

    References:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
        from Overfitting", JMLR 2014; Vaswani et al. 2017, section 5.4.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate, "rate")
        self.seed = seed
        self.supports_masking = True
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if self.rate > 0 else None
        )
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if keras.backend.backend() != "tensorflow":
            return keras.random.dropout(inputs, self.rate, seed=self.seed_generator)
        return _tensorflow_dropout(inputs, self.rate, self.seed_generator.next())

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def _tensorflow_dropout(inputs, rate, seed):
    """`inputs` with each element zeroed where its 16 random bits fall below
    the threshold of `rate` in `inputs`'s dtype (`tensorflow_rate`), the rest
    scaled; `seed`: the generator's `(2,)` state."""
    import tensorflow as tf

    threshold, scale = tensorflow_rate(rate, inputs.dtype.as_numpy_dtype)
    shape = tf.shape(inputs)
    size = tf.size(inputs)
    # The generator's state is int64 on TensorFlow; the stateless ops want
    # int32 seeds under XLA (what `keras.random` does too).
    seed = tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)
    # One uint32 holds two elements' bits. (ceil(size / 2),)
    words = tf.random.stateless_uniform(
        [(size + 1) // 2], seed, minval=None, maxval=None, dtype=tf.uint32,
        alg="philox",
    )
    # (size,) after the odd element's spare half is cut.
    bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    keep = tf.reshape(bits >= threshold, shape)
    # A scalar zero, broadcast: no zeros tensor is filled a call.
    zero = tf.constant(0, inputs.dtype)
    return tf.where(keep, inputs * tf.constant(scale, inputs.dtype), zero)


def tensorflow_rate(rate, dtype):
    """`(threshold, scale)` of a dropout of `rate` in `dtype` on TensorFlow:
    an element is dropped when its 16 random bits are below `threshold` and
    kept values are multiplied by `scale`, 1 / (1 - rate) as `dtype` rounds
    it. The threshold is the one whose keep probability is 1 / `scale`, so
    the expectation is exact whatever the dtype's rounding (to 2**-16): 0.1
    drops 6554 / 65536 in float32 and 6461 / 65536 (0.0986) in bfloat16,
    whose nearest number to 1 / 0.9 is 1.109375."""
    import numpy as np

    scale = float(np.asarray(1 / (1 - rate), dtype))
    # At most 2**16 - 1, so it fits the bits' uint16 (a rate within 2**-17
    # of 1 drops all but 1 / 65536).
    threshold = min(round(2**_BITS * (1 - 1 / scale)), 2**_BITS - 1)
    return threshold, scale
