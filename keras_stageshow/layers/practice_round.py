import keras

from keras_stageshow.layers.base import StageRound
from keras_stageshow.layers.crew_discussion import CrewDiscussion
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import key_padding_attention_mask
from keras_stageshow.layers.utils import merge_attention_masks


@keras.saving.register_keras_serializable(package="keras_stageshow")
class PracticeRound(StageRound):
    """Practice round: one encoder layer (self-attention + feed-forward).

    One round of the stage show: script interpretation (the sequence read as
    queries, keys and values), `Rehearsal` (multi-head self-attention with
    the padding mask), `Adjust`, then `CrewDiscussion` (the position-wise
    feed-forward network and its `Adjust`). Paper section 3.1, encoder.

    Masking: `padding_mask` `(batch, seq_len)` (or the input's Keras mask)
    hides padded positions from every query; an optional `attention_mask`
    `(batch, seq_len, seq_len)` is ANDed with it.

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

    Example:
    >>> round_ = PracticeRound(num_heads=2, d_ff=32)
    >>> round_(np.ones((2, 5, 16), "float32")).shape
    (2, 5, 16)
    """

    def build(self, x_shape):
        self._check_input_shape(x_shape, "x")
        self.d_model = x_shape[-1]
        # Script interpretation and rehearsal (self-attention).
        self.rehearsal = self._make_rehearsal(self.d_model, "rehearsal")
        self.rehearsal.build(x_shape, x_shape)
        self.rehearsal_adjust = self._make_adjust("rehearsal_adjust")
        self.rehearsal_adjust.build(x_shape)
        # Crew discussion (feed-forward).
        self.crew_discussion = CrewDiscussion(
            self.d_ff,
            activation=self.activation,
            name="crew_discussion",
            **self._feedforward_kwargs(),
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
        padding_mask = mask if padding_mask is None else padding_mask
        if padding_mask is not None:
            # (batch, 1, key_len)
            padding_mask = key_padding_attention_mask(padding_mask)
        attention_mask = merge_attention_masks(padding_mask, attention_mask)

        # Rehearsal: Q = plots, K = roles, V = characteristics, all x.
        residual = x
        x = self.rehearsal_adjust.pre_norm(x)
        x = self.rehearsal(
            query=x,
            value=x,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        x, scores = x if return_attention_scores else (x, None)
        x = self.rehearsal_adjust(x, residual, training=training)

        # Crew discussion.
        x = self.crew_discussion(x, training=training)
        return (x, scores) if return_attention_scores else x

    def compute_output_shape(self, x_shape):
        return x_shape
