"""`AssessmentRound`: one decoder layer."""

import keras

from keras_stageshow.layers.arguments import BLOCK_ARGUMENTS
from keras_stageshow.layers.arguments import FEED_FORWARD_ARGUMENTS
from keras_stageshow.layers.arguments import ROUND_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.ask_questions import AskQuestions
from keras_stageshow.layers.assessment_discussion import AssessmentDiscussion
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import split_outputs
from keras_stageshow.layers.watch_show import WatchShow


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AssessmentRound(keras.layers.Layer):
    """Assessment round: one decoder layer (paper section 3.1, decoder).

    `AskQuestions` (masked self-attention + Adjust), `WatchShow`
    (cross-attention over the show + Adjust), `AssessmentDiscussion`
    (feed-forward + Adjust).

    Masking: the look-ahead mask and `target_mask` (padded targets) reach the
    self-attention; `enc_output_mask` (padded sources) reaches the
    cross-attention. Keras fills both from the inputs' Keras masks when they
    are not passed.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        d_ff: int, feed-forward width.
        dropout_rate: float, dropout on every sub-layer output.
        attention_dropout_rate: float, dropout on attention weights.
        activation: feed-forward activation.
        norm_first: bool, pre-norm instead of post-norm.
        layer_norm_epsilon: float.
        kernel_initializer, bias_initializer: for every dense kernel/bias.
        **kwargs: base layer keyword arguments.

    Call arguments:
        target: `(batch, target_len, d_model)`.
        enc_output: `(batch, source_len, d_model)`, the show.
        target_mask: optional boolean `(batch, target_len)`.
        enc_output_mask: optional boolean `(batch, source_len)`.
        return_attention_scores: bool, also return a dict with the
            `"ask_questions"` and `"watch_show"` attention weights.
        training: bool, whether dropout is active.
        self_attention_cache, self_attention_cache_update_index,
        cache_write: for one decoding step, as in `AskQuestions`.
        cross_attention_cache: the show's keys and values, as in
            `WatchShow` (then `enc_output` is not needed).

    Returns `(batch, target_len, d_model)`, or `(output, scores)`, or with
    the caches `(output, self_attention_cache, cross_attention_cache)`.

    Example:
    >>> round_ = AssessmentRound(num_heads=2, d_ff=32)
    >>> target, show = np.ones((2, 3, 16), "float32"), np.ones((2, 5, 16), "float32")
    >>> round_(target, show).shape
    (2, 3, 16)

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

    def build(self, target_shape, enc_output_shape):
        check_rank(target_shape, 3, "target", "of shape (batch, seq_len, d_model)")
        self.d_model = target_shape[-1]
        # Ask questions (masked self-attention).
        self.ask_questions = AskQuestions(
            **sublayer_arguments(self, BLOCK_ARGUMENTS), name="ask_questions"
        )
        self.ask_questions.build(target_shape)
        # Watch the show and answer the questions (cross-attention).
        self.watch_show = WatchShow(
            **sublayer_arguments(self, BLOCK_ARGUMENTS), name="watch_show"
        )
        self.watch_show.build(target_shape, enc_output_shape)
        # Assessment discussion (feed-forward).
        self.assessment_discussion = AssessmentDiscussion(
            **sublayer_arguments(self, FEED_FORWARD_ARGUMENTS),
            name="assessment_discussion",
        )
        self.assessment_discussion.build(target_shape)
        self.built = True

    def call(
        self,
        target,
        enc_output=None,
        target_mask=None,
        enc_output_mask=None,
        return_attention_scores=False,
        training=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cache_write="slice_update",
    ):
        cached = self_attention_cache is not None or cross_attention_cache is not None
        if cached and return_attention_scores:
            raise ValueError("Attention scores come without a cache only.")
        # Ask questions (masked self-attention). (batch, target_len, d_model)
        questions = self.ask_questions(
            target,
            padding_mask=target_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            self_attention_cache=self_attention_cache,
            self_attention_cache_update_index=self_attention_cache_update_index,
            cache_write=cache_write,
        )
        questions, ask_scores_or_cache = split_outputs(
            questions, return_attention_scores or self_attention_cache is not None
        )
        # Watch the show and answer the questions (cross-attention).
        answers = self.watch_show(
            questions,
            enc_output,
            questions_mask=target_mask,
            enc_output_mask=enc_output_mask,
            return_attention_scores=return_attention_scores,
            training=training,
            cross_attention_cache=cross_attention_cache,
        )
        answers, watch_scores_or_cache = split_outputs(
            answers, return_attention_scores or cross_attention_cache is not None
        )
        # Assessment discussion (feed-forward).
        x = self.assessment_discussion(answers, training=training)
        if cached:
            # The self-attention cache updated, the cross-attention one as given.
            return x, ask_scores_or_cache, watch_scores_or_cache
        if return_attention_scores:
            return x, {
                "ask_questions": ask_scores_or_cache,
                "watch_show": watch_scores_or_cache,
            }
        return x

    def compute_output_shape(self, target_shape, enc_output_shape=None):
        return target_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, ROUND_ARGUMENTS))
        return config
