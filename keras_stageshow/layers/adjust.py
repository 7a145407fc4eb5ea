"""`Adjust`: residual dropout, residual add and LayerNorm (post- or pre-norm)."""

import keras

from keras_stageshow.layers.arguments import ADJUST_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.dropout import Dropout
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Adjust(keras.layers.Layer):
    """Adjust: residual dropout, residual connection and layer normalization.

    After every act the show is adjusted (paper section 5.4 and 3.1):
    dropout cuts random bits of the plot so the show does not rest on one
    actor, the residual add keeps each plot connected to what came before,
    and LayerNorm keeps any actor from bringing too much of themselves.

    Post-norm (the paper, default): `LayerNorm(residual + Dropout(x))`.
    Pre-norm (`norm_first=True`, for deep stacks): the normalization moves to
    the sub-layer's input, through `pre_norm`, and the adjustment is
    `residual + Dropout(x)`.

    Args:
        dropout_rate: float, dropout on the sub-layer output.
        norm_first: bool, pre-norm instead of the paper's post-norm.
        layer_norm_epsilon: float, LayerNorm's epsilon.
        **kwargs: base layer keyword arguments.

    Call arguments:
        inputs: the sub-layer's output, `(batch, seq_len, d_model)`.
        residual: the sub-layer's input before `pre_norm`, same shape.
        training: bool, whether dropout is active.

    Example:
    >>> adjust = Adjust(dropout_rate=0.1)
    >>> x = np.ones((2, 3, 8), "float32")
    >>> adjust(x, x).shape
    (2, 3, 8)
    """

    def __init__(
        self, dropout_rate=0.1, norm_first=False, layer_norm_epsilon=1e-5, **kwargs
    ):
        super().__init__(**kwargs)
        store_arguments(self, locals(), ADJUST_ARGUMENTS)
        self.supports_masking = True

    def build(self, inputs_shape):
        check_rank(inputs_shape, 3, "inputs", "of shape (batch, seq_len, d_model)")
        self.dropout = Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="dropout"
        )
        self.dropout.build(inputs_shape)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="layer_norm",
        )
        self.layer_norm.build(inputs_shape)
        self.built = True

    def pre_norm(self, x):
        """Normalizes a sub-layer's input in pre-norm mode; identity otherwise."""
        return self.layer_norm(x) if self.norm_first else x

    def call(self, inputs, residual, training=None):
        check_last_dim(inputs, None, "inputs")
        check_last_dim(residual, inputs.shape[-1], "residual")
        x = self.dropout(inputs, training=training)
        x = x + residual
        if not self.norm_first:
            x = self.layer_norm(x)
        return x

    def compute_output_shape(self, inputs_shape, residual_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, ADJUST_ARGUMENTS))
        return config
