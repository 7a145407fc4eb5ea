"""`AssessmentRound`: one decoder layer."""

import keras

from keras_stageshow.layers.ask_questions import AskQuestions
from keras_stageshow.layers.assessment_discussion import AssessmentDiscussion
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import clone_initializer
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
        enc_output: `(batch, source_len, d_model)`.
        target_mask: optional boolean `(batch, target_len)`.
        enc_output_mask: optional boolean `(batch, source_len)`.
        return_attention_scores: bool, also return a dict with the
            `"ask_questions"` and `"watch_show"` attention weights.
        training: bool, whether dropout is active.

    Returns `(batch, target_len, d_model)`, or `(output, scores)`.
    Cached decoding goes through `call_with_cache`.

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

    def build(self, target_shape, enc_output_shape):
        check_rank(target_shape, 3, "target", "of shape (batch, seq_len, d_model)")
        self.d_model = target_shape[-1]
        shared = dict(
            dropout_rate=self.dropout_rate,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
        )
        attention = dict(
            num_heads=self.num_heads,
            attention_dropout_rate=self.attention_dropout_rate,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            **shared,
        )
        # Ask questions (masked self-attention).
        self.ask_questions = AskQuestions(name="ask_questions", **attention)
        self.ask_questions.build(target_shape)
        # Watch the show and answer the questions (cross-attention).
        self.watch_show = WatchShow(name="watch_show", **attention)
        self.watch_show.build(target_shape, enc_output_shape)
        # Assessment discussion (feed-forward).
        self.assessment_discussion = AssessmentDiscussion(
            self.d_ff,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            name="assessment_discussion",
            **shared,
        )
        self.assessment_discussion.build(target_shape)
        self.built = True

    def call(
        self,
        target,
        enc_output,
        target_mask=None,
        enc_output_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        questions = self.ask_questions(
            target,
            padding_mask=target_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        questions, ask_scores = (
            questions if return_attention_scores else (questions, None)
        )
        answers = self.watch_show(
            questions,
            enc_output,
            questions_mask=target_mask,
            enc_output_mask=enc_output_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        answers, watch_scores = (
            answers if return_attention_scores else (answers, None)
        )
        x = self.assessment_discussion(answers, training=training)
        if return_attention_scores:
            return x, {"ask_questions": ask_scores, "watch_show": watch_scores}
        return x

    def call_with_cache(
        self, target, self_cache, cross_cache, cache_update_index,
        enc_output_mask, cache_write="slice_update",
    ):
        """One decoding step of this round. `target` `(batch, 1, d_model)` is
        the token at `cache_update_index`; `self_cache` comes from
        `ask_questions.empty_cache`, `cross_cache` from
        `watch_show.compute_cache`. Returns `(output, self_cache)`."""
        questions, self_cache = self.ask_questions.call_with_cache(
            target, self_cache, cache_update_index, cache_write
        )
        answers = self.watch_show.call_with_cache(
            questions, cross_cache, enc_output_mask
        )
        return self.assessment_discussion(answers, training=False), self_cache

    def compute_output_shape(self, target_shape, enc_output_shape=None):
        return target_shape

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
