"""`WatchShow`: the decoder's cross-attention block."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.arguments import ADJUST_ARGUMENTS
from keras_stageshow.layers.arguments import BLOCK_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import rehearsal_arguments
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import split_outputs


@keras.saving.register_keras_serializable(package="keras_stageshow")
class WatchShow(keras.layers.Layer):
    """Watch the show and answer the questions: cross-attention, then Adjust.

    Encoder-decoder attention (paper section 3.2.3): the queries are the
    committee's questions, the keys and values are the show (`enc_output`),
    and padded source positions are hidden by the source padding mask. Then
    `Adjust`. In pre-norm mode only the questions are normalized; the show is
    already normalized by the stage show's final LayerNorm.

    For the awards ceremony the show's keys and values are projected once
    per source (`compute_cache`) and each step passes them to `call` as
    `cross_attention_cache`, instead of `enc_output`.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        dropout_rate: float, dropout on the attention output.
        attention_dropout_rate: float, dropout on attention weights.
        norm_first: bool, pre-norm instead of post-norm.
        layer_norm_epsilon: float.
        kernel_initializer, bias_initializer: for the attention projections.
        **kwargs: base layer keyword arguments.

    Call arguments:
        questions: `(batch, target_len, d_model)`.
        enc_output: `(batch, source_len, d_model)`, the show (not needed
            with a `cross_attention_cache`).
        questions_mask: optional boolean `(batch, target_len)`: padded
            questions get no answer. Keras fills it from `questions`' mask.
        enc_output_mask: optional boolean `(batch, source_len)`; Keras fills
            it from `enc_output`'s mask when it comes from `StageShow`.
        return_attention_scores: bool, also return the attention weights
            `(batch, num_heads, target_len, source_len)`.
        training: bool, whether dropout is active.
        cross_attention_cache: optional, `compute_cache`'s keys and values
            of the show, for a decoding step (`questions_mask` unused there).

    Returns `(batch, target_len, d_model)`, or `(output, scores)`, or with
    a cache `(output, cross_attention_cache)` (the cache as given).

    Example:
    >>> watch = WatchShow(num_heads=2)
    >>> q, show = np.ones((2, 3, 16), "float32"), np.ones((2, 5, 16), "float32")
    >>> watch(q, show).shape
    (2, 3, 16)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.3.
    """

    def __init__(
        self,
        num_heads,
        dropout_rate=0.1,
        attention_dropout_rate=0.0,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        store_arguments(self, locals(), BLOCK_ARGUMENTS)
        self.supports_masking = True

    def build(self, questions_shape, enc_output_shape):
        check_rank(
            questions_shape, 3, "questions", "of shape (batch, seq_len, d_model)"
        )
        check_rank(
            enc_output_shape, 3, "enc_output", "of shape (batch, source_len, d_model)"
        )
        self.d_model = questions_shape[-1]
        self.rehearsal = Rehearsal(
            **rehearsal_arguments(self, "questions' last dimension"),
            name="cross_attention",
        )
        self.rehearsal.build(questions_shape, enc_output_shape)
        self.adjust = Adjust(
            **sublayer_arguments(self, ADJUST_ARGUMENTS), name="adjust"
        )
        self.adjust.build(questions_shape)
        self.built = True

    def call(
        self,
        questions,
        enc_output=None,
        questions_mask=None,
        enc_output_mask=None,
        return_attention_scores=False,
        training=None,
        cross_attention_cache=None,
    ):
        check_last_dim(questions, self.d_model, "questions")
        cached = cross_attention_cache is not None
        if not cached:
            if enc_output is None:
                raise ValueError(
                    "`WatchShow` needs `enc_output` (the show), or its "
                    "`cross_attention_cache`."
                )
            check_last_dim(enc_output, self.d_model, "enc_output")
        residual = questions
        x = self.adjust.pre_norm(questions)
        outputs = self.rehearsal(
            query=x,
            value=enc_output,
            query_mask=questions_mask,
            value_mask=enc_output_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            cache=cross_attention_cache,
        )
        x, scores_or_cache = split_outputs(outputs, return_attention_scores or cached)
        x = self.adjust(x, residual, training=training)
        return x if scores_or_cache is None else (x, scores_or_cache)

    def compute_cache(self, enc_output):
        """The show's keys and values, projected once per source.

        # (keys, values), each (batch, num_heads, source_len, head_dim)
        """
        return self.rehearsal.compute_cache(enc_output)

    def compute_output_shape(self, questions_shape, enc_output_shape=None):
        return questions_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, BLOCK_ARGUMENTS))
        return config
