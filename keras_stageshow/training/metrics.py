"""`MaskedAccuracy`: token accuracy that ignores padding."""

import keras
from keras import ops

from keras_stageshow.special_ids import PAD_ID


@keras.saving.register_keras_serializable(package="keras_stageshow")
class MaskedAccuracy(keras.metrics.Metric):
    """Token accuracy over real target tokens (labels equal to `pad_id` ignored).

    Counts correct argmax predictions and real tokens across batches, so the
    result is the accuracy over all real tokens seen, not a mean of batch
    means.

    Args:
        pad_id: int, the padding label to ignore.
        name: metric name.

    Example:
    >>> metric = MaskedAccuracy()
    >>> metric.update_state(np.array([[2, 0]]), np.eye(3)[None, [2, 1]])
    >>> float(metric.result())
    1.0
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = int(pad_id)
        self.correct = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="correct"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predictions = _argmax_last_axis(y_pred)  # (batch, target_len)
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            if len(sample_weight.shape) == 1:
                # (batch,) -> (batch, 1): one weight per example.
                sample_weight = ops.expand_dims(sample_weight, -1)
            mask = mask * sample_weight
        hits = ops.cast(ops.equal(y_true, predictions), "float32") * mask
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def get_config(self):
        config = super().get_config()
        config["pad_id"] = self.pad_id
        return config


def _argmax_last_axis(logits):
    """The index of each row's largest logit, as int32.

    On TensorFlow, `keras.ops.argmax` of a float tensor first rewrites -0.0
    to the smallest negative float, so that ties at zero break as NumPy's do
    under flush-to-zero (keras-team/keras, after jax-ml/jax#24280): a cast,
    an equality, a sign-bit test, a select, four passes over the
    (batch, target_len, vocab) logits before the argmax. In the default
    training step that was 31 of the metric's 43 ms of op time a step, 5% of
    the step (benchmarks/README.md, section 5, item 7). An accuracy does not
    need the tie rule, so TensorFlow's own argmax runs there; the other
    backends keep Keras's."""
    if keras.backend.backend() != "tensorflow":
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    import tensorflow as tf

    return tf.math.argmax(logits, axis=-1, output_type=tf.int32)
