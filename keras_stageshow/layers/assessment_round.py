import keras

from keras_stageshow.layers.ask_questions import AskQuestions
from keras_stageshow.layers.assessment_discussion import AssessmentDiscussion
from keras_stageshow.layers.base import StageRound
from keras_stageshow.layers.watch_show import WatchShow


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AssessmentRound(StageRound):
    """Assessment round: one decoder layer (paper section 3.1, decoder).

    `AskQuestions` (masked self-attention + Adjust), `WatchShow`
    (cross-attention over the show + Adjust), `AssessmentDiscussion`
    (feed-forward + Adjust).

    Masking: the look-ahead mask and `target_mask` (padded targets) reach the
    self-attention; `enc_output_mask` (padded sources) reaches the
    cross-attention. Keras fills both from the inputs' Keras masks.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        d_ff: int, feed-forward width.
        activation: feed-forward activation.
        **kwargs: `dropout_rate`, `attention_dropout_rate`, `norm_first`,
            `layer_norm_epsilon`, `kernel_initializer`, `bias_initializer`
            and base layer keyword arguments.

    Call arguments:
        target: `(batch, target_len, d_model)`.
        enc_output: `(batch, source_len, d_model)`.
        target_mask: optional boolean `(batch, target_len)`.
        enc_output_mask: optional boolean `(batch, source_len)`.
        self_attention_cache: optional `(batch, 2, max_len, num_heads,
            head_dim)`, with `cache_update_index`, for cached decoding.
        cross_attention_cache: optional `(batch, 2, source_len, num_heads,
            head_dim)`, the show projected once (`compute_cache`).
        cache_update_index: int, position of `target`'s first token.
        return_attention_scores: bool, also return a dict with the
            `"ask_questions"` and `"watch_show"` attention weights.
        training: bool, whether dropout is active.

    Returns the output, then the updated self-attention cache if one was
    given, then the attention weights if asked for.

    Example:
    >>> round_ = AssessmentRound(num_heads=2, d_ff=32)
    >>> target, show = np.ones((2, 3, 16), "float32"), np.ones((2, 5, 16), "float32")
    >>> round_(target, show).shape
    (2, 3, 16)
    """

    def build(self, target_shape, enc_output_shape):
        self._check_input_shape(target_shape, "target")
        self.d_model = target_shape[-1]
        block_kwargs = dict(
            num_heads=self.num_heads,
            attention_dropout_rate=self.attention_dropout_rate,
            **self._feedforward_kwargs(),
        )
        # Ask questions (masked self-attention).
        self.ask_questions = AskQuestions(name="ask_questions", **block_kwargs)
        self.ask_questions.build(target_shape)
        # Watch the show and answer the questions (cross-attention).
        self.watch_show = WatchShow(name="watch_show", **block_kwargs)
        self.watch_show.build(target_shape, enc_output_shape)
        # Assessment discussion (feed-forward).
        self.assessment_discussion = AssessmentDiscussion(
            self.d_ff,
            activation=self.activation,
            name="assessment_discussion",
            **self._feedforward_kwargs(),
        )
        self.assessment_discussion.build(target_shape)
        self.built = True

    def call(
        self,
        target,
        enc_output,
        target_mask=None,
        enc_output_mask=None,
        self_attention_cache=None,
        cross_attention_cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        training=None,
    ):
        outputs = self.ask_questions(
            target,
            padding_mask=target_mask,
            cache=self_attention_cache,
            cache_update_index=cache_update_index,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        questions = outputs[0]
        answers = self.watch_show(
            questions,
            enc_output,
            enc_output_mask=enc_output_mask,
            cache=cross_attention_cache,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        if return_attention_scores:
            answers, cross_scores = answers
        x = self.assessment_discussion(answers, training=training)

        results = (x,)
        if self_attention_cache is not None:
            results += (outputs[1],)
        if return_attention_scores:
            results += ({"ask_questions": outputs[-1], "watch_show": cross_scores},)
        return results[0] if len(results) == 1 else results

    def compute_output_shape(self, target_shape, enc_output_shape=None):
        return target_shape
