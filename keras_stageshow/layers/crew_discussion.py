"""`CrewDiscussion`: the encoder's position-wise feed-forward block."""

import keras

from keras_stageshow.layers import fused_projection
from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.arguments import ADJUST_ARGUMENTS
from keras_stageshow.layers.arguments import FEED_FORWARD_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_stageshow")
class CrewDiscussion(keras.layers.Layer):
    """Crew discussion: the position-wise feed-forward network, then Adjust.

    After rehearsing, the crew discusses each position on its own:
    `FFN(x) = max(0, x W1 + b1) W2 + b2` (paper section 3.3), followed by
    `Adjust` (dropout, residual add, LayerNorm). The Oscar assessment's
    discussion (`AssessmentDiscussion`) is the same computation.

    Args:
        d_ff: int, width of the inner layer (2048 in the base model).
        dropout_rate: float, dropout on the output (inside `Adjust`).
        activation: activation of the inner layer, `"relu"` in the paper.
        norm_first: bool, pre-norm instead of the paper's post-norm.
        layer_norm_epsilon: float, LayerNorm's epsilon.
        kernel_initializer: initializer of both dense kernels.
        bias_initializer: initializer of both dense biases.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: `(batch, seq_len, d_model)`.
        training: bool, whether dropout is active.

    Example:
    >>> crew = CrewDiscussion(d_ff=32)
    >>> crew(np.ones((2, 3, 8), "float32")).shape
    (2, 3, 8)
    """

    def __init__(
        self,
        d_ff,
        dropout_rate=0.1,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        store_arguments(self, locals(), FEED_FORWARD_ARGUMENTS)
        self.supports_masking = True

    def build(self, x_shape):
        check_rank(x_shape, 3, "x", "of shape (batch, seq_len, d_model)")
        d_model = x_shape[-1]
        self.inner_dense = keras.layers.Dense(
            self.d_ff,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="inner_dense",
        )
        self.inner_dense.build(x_shape)
        self.output_dense = keras.layers.Dense(
            d_model,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((*x_shape[:-1], self.d_ff))
        self.adjust = Adjust(
            **sublayer_arguments(self, ADJUST_ARGUMENTS), name="adjust"
        )
        self.adjust.build(x_shape)
        self.built = True

    def call(self, x, training=None):
        check_last_dim(x, self.output_dense.units, "x")
        residual = x
        x = self.adjust.pre_norm(x)
        # (batch, seq_len, d_ff) -> (batch, seq_len, d_model)
        x = fused_projection.on_rows(
            lambda rows: self.output_dense(self.inner_dense(rows)), x
        )
        return self.adjust(x, residual, training=training)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, FEED_FORWARD_ARGUMENTS))
        return config
