"""`MaskedSparseCategoricalCrossentropy`: the paper's label-smoothed loss, padding ignored."""

import keras
from keras import ops

from keras_stageshow.special_ids import PAD_ID
from keras_stageshow.layers.utils import check_token_ids


@keras.saving.register_keras_serializable(package="keras_stageshow")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy over real target tokens, with label smoothing.

    Padding (label `pad_id`) is ignored, and the loss is the mean over real
    tokens of the batch (not over `batch * target_len`, which would make the
    loss depend on how much padding a batch has). Label smoothing spreads
    `label_smoothing` of the target mass uniformly over the vocabulary, as in
    the paper (section 5.4, epsilon_ls = 0.1). Logits are cast to float32
    before the log-softmax, so the loss is safe under mixed precision.

    Args:
        label_smoothing: float in [0, 1).
        from_logits: bool; only logits are supported (the model's `Voting`
            returns logits), kept for Keras's familiar signature.
        pad_id: int, the padding label to ignore.
        name: loss name.

    Example:
    >>> loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    >>> loss(np.array([[3, 0]]), np.zeros((1, 2, 5), "float32"))  # ~log(5)
    """

    def __init__(
        self,
        label_smoothing=0.0,
        from_logits=True,
        pad_id=PAD_ID,
        name="masked_sparse_categorical_crossentropy",
        **kwargs,
    ):
        if not from_logits:
            raise ValueError(
                "`from_logits=False` is not supported: pass logits (the "
                "output of `Voting` / `Transformer`), not probabilities."
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1); received {label_smoothing}."
            )
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = True
        self.pad_id = int(pad_id)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Our own reduction: Keras's would divide by batch * target_len, and
        # would also apply the logits' Keras mask a second time.
        with keras.name_scope(self.name):
            y_true = ops.cast(y_true, "int32")
            # (batch, target_len)
            weights = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, "float32")
                if len(sample_weight.shape) == 1:
                    sample_weight = ops.expand_dims(sample_weight, -1)
                weights = weights * sample_weight
            losses = self.call(y_true, y_pred)
            # Under tf.distribute each replica divides by the token count of
            # the whole global batch: the replicas' losses (and gradients)
            # then sum to the global mean over real tokens, as on one device,
            # however the padding falls across replicas.
            count = _sum_over_replicas(ops.sum(weights))
            return ops.sum(losses * weights) / ops.maximum(count, 1.0)

    def call(self, y_true, y_pred):
        """Per-token losses, padding included. # (batch, target_len)"""
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == 2 and y_pred.shape[-1] is not None:
            # A label outside the vocabulary would get an all-zero one-hot
            # below, and a silently wrong loss.
            y_true = check_token_ids(y_true, "y_true", y_pred.shape[-1])
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        # The smoothed target distribution as a dense product with a one-hot,
        # not a gather: the gather's gradient (`take_along_axis`) scatters
        # into a zeroed (batch, target_len, vocab) tensor, which made the loss
        # half as fast again (benchmarks/README.md, "Where it goes").
        vocabulary_size = ops.shape(log_probs)[-1]
        on_target = 1.0 - self.label_smoothing
        targets = ops.one_hot(y_true, vocabulary_size, dtype="float32") * on_target
        if self.label_smoothing:
            targets = targets + self.label_smoothing / ops.cast(
                vocabulary_size, "float32"
            )
        return -ops.sum(targets * log_probs, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config.update(
            {
                "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits,
                "pad_id": self.pad_id,
            }
        )
        return config


def _sum_over_replicas(value):
    """`value` summed over the replicas of a tf.distribute strategy (in a
    replica context), else `value`.

    Each replica then returns its share of the global mean (its tokens'
    loss over all replicas' token count): the shares sum to the global mean,
    so the gradients summed across replicas are the global mean's, and so is
    the loss Keras reports (the shares times the number of replicas,
    averaged)."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return value
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce("sum", ops.stop_gradient(value))
