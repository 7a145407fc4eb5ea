"""`PracticeRound`: one encoder layer."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.crew_discussion import CrewDiscussion
from keras_stageshow.layers.masks import resolve_padding_mask
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_stageshow")
class PracticeRound(keras.layers.Layer):
    """Practice round: one encoder layer (self-attention + feed-forward).

    One round of the stage show: script interpretation (the sequence read as
    queries, keys and values), `Rehearsal` (multi-head self-attention with
    the padding mask), `Adjust`, then `CrewDiscussion` (the position-wise
    feed-forward network and its `Adjust`). Paper section 3.1, encoder.

    Masking: `padding_mask` `(batch, seq_len)` (or, when not given, the
    input's Keras mask) hides padded positions from every query; an optional
    `attention_mask` `(batch, seq_len, seq_len)` is ANDed with it.

    Args:
        num_heads: int, number of attention heads; must divide `d_model`.
        d_ff: int, width of the feed-forward inner layer.
        dropout_rate: float, dropout on every sub-layer output.
        attention_dropout_rate: float, dropout on attention weights (0 in the
            paper).
        activation: feed-forward activation, `"relu"` in the paper.
        norm_first: bool, pre-norm instead of the paper's post-norm.
        layer_norm_epsilon: float.
        kernel_initializer, bias_initializer: for every dense kernel/bias.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: `(batch, seq_len, d_model)`.
        padding_mask: optional boolean `(batch, seq_len)`, True = real token.
        attention_mask: optional boolean `(batch, seq_len, seq_len)`.
        return_attention_scores: bool, also return the rehearsal's attention
            weights `(batch, num_heads, seq_len, seq_len)`.
        training: bool, whether dropout is active.

    Returns `x` `(batch, seq_len, d_model)`, or `(x, scores)`.

    Example:
    >>> round_ = PracticeRound(num_heads=2, d_ff=32)
    >>> round_(np.ones((2, 5, 16), "float32")).shape
    (2, 5, 16)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.1.
    """

    def __init__(
        self,
        num_heads,
        d_ff,
        dropout_rate=0.1,
        attention_dropout_rate=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.d_ff = check_positive_int(d_ff, "d_ff")
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate")
        self.attention_dropout_rate = check_rate(
            attention_dropout_rate, "attention_dropout_rate"
        )
        self.activation = keras.activations.get(activation)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, x_shape):
        check_rank(x_shape, 3, "x", "of shape (batch, seq_len, d_model)")
        self.d_model = x_shape[-1]
        key_dim = check_heads(self.d_model, self.num_heads, "x's last dimension")
        # Script interpretation and rehearsal (self-attention).
        self.rehearsal = Rehearsal(
            self.num_heads,
            key_dim,
            dropout=self.attention_dropout_rate,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="rehearsal",
        )
        self.rehearsal.build(x_shape, x_shape)
        self.rehearsal_adjust = Adjust(
            self.dropout_rate,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="rehearsal_adjust",
        )
        self.rehearsal_adjust.build(x_shape)
        # Crew discussion (feed-forward).
        self.crew_discussion = CrewDiscussion(
            self.d_ff,
            dropout_rate=self.dropout_rate,
            activation=self.activation,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="crew_discussion",
        )
        self.crew_discussion.build(x_shape)
        self.built = True

    def call(
        self,
        x,
        padding_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        mask=None,
    ):
        check_last_dim(x, self.d_model, "x")
        # (batch, seq_len): hides padded keys, and padded queries see nothing.
        padding_mask = resolve_padding_mask(padding_mask, mask)

        # Rehearsal: Q = plots, K = roles, V = characteristics, all x.
        residual = x
        x = self.rehearsal_adjust.pre_norm(x)
        outputs = self.rehearsal(
            query=x,
            value=x,
            query_mask=padding_mask,
            value_mask=padding_mask,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        x, scores = outputs if return_attention_scores else (outputs, None)
        x = self.rehearsal_adjust(x, residual, training=training)

        # Crew discussion.
        x = self.crew_discussion(x, training=training)
        return (x, scores) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "d_ff": self.d_ff,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
