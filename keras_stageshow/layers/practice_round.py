"""`PracticeRound`: one encoder layer."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.arguments import ADJUST_ARGUMENTS
from keras_stageshow.layers.arguments import FEED_FORWARD_ARGUMENTS
from keras_stageshow.layers.arguments import ROUND_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import rehearsal_arguments
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.crew_discussion import CrewDiscussion
from keras_stageshow.layers.masks import resolve_padding_mask
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import split_outputs


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
        store_arguments(self, locals(), ROUND_ARGUMENTS)
        self.supports_masking = True

    def build(self, x_shape):
        check_rank(x_shape, 3, "x", "of shape (batch, seq_len, d_model)")
        self.d_model = x_shape[-1]
        # Script interpretation and rehearsal (self-attention).
        self.rehearsal = Rehearsal(
            **rehearsal_arguments(self, "x's last dimension"), name="rehearsal"
        )
        self.rehearsal.build(x_shape, x_shape)
        self.rehearsal_adjust = Adjust(
            **sublayer_arguments(self, ADJUST_ARGUMENTS), name="rehearsal_adjust"
        )
        self.rehearsal_adjust.build(x_shape)
        # Crew discussion (feed-forward).
        self.crew_discussion = CrewDiscussion(
            **sublayer_arguments(self, FEED_FORWARD_ARGUMENTS),
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
        x, scores = split_outputs(outputs, return_attention_scores)
        x = self.rehearsal_adjust(x, residual, training=training)

        # Crew discussion.
        x = self.crew_discussion(x, training=training)
        return (x, scores) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, ROUND_ARGUMENTS))
        return config
