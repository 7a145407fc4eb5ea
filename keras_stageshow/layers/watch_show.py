import keras

from keras_stageshow.layers.base import StageBlock
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import key_padding_attention_mask


@keras.saving.register_keras_serializable(package="keras_stageshow")
class WatchShow(StageBlock):
    """Watch the show and answer the questions: cross-attention, then Adjust.

    Encoder-decoder attention (paper section 3.2.3): the queries are the
    committee's questions, the keys and values are the show (`enc_output`),
    and padded source positions are hidden by the source padding mask. Then
    `Adjust`. In pre-norm mode only the questions are normalized; the show is
    already normalized by the stage show's final LayerNorm.

    For the awards ceremony the show's keys and values are projected once
    per source (`compute_cache`) and passed back as `cache`.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        dropout_rate, attention_dropout_rate, norm_first, layer_norm_epsilon,
        kernel_initializer, bias_initializer: as in `AskQuestions`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        questions: `(batch, target_len, d_model)`.
        enc_output: `(batch, source_len, d_model)`, the show.
        enc_output_mask: optional boolean `(batch, source_len)`; Keras fills
            it from `enc_output`'s mask when it comes from `StageShow`.
        cache: optional `(batch, 2, source_len, num_heads, head_dim)` from
            `compute_cache`; `enc_output` is then not projected again.
        return_attention_scores: bool, also return the attention weights
            `(batch, num_heads, target_len, source_len)`.
        training: bool, whether dropout is active.

    Example:
    >>> watch = WatchShow(num_heads=2)
    >>> q, show = np.ones((2, 3, 16), "float32"), np.ones((2, 5, 16), "float32")
    >>> watch(q, show).shape
    (2, 3, 16)
    """

    def build(self, questions_shape, enc_output_shape):
        self._check_input_shape(questions_shape, "questions")
        check_rank(
            enc_output_shape, 3, "enc_output", "of shape (batch, source_len, d_model)"
        )
        self.d_model = questions_shape[-1]
        self.rehearsal = self._make_rehearsal(self.d_model, "cross_attention")
        self.rehearsal.build(questions_shape, enc_output_shape)
        self.adjust = self._make_adjust("adjust")
        self.adjust.build(questions_shape)
        self.built = True

    def call(
        self,
        questions,
        enc_output,
        enc_output_mask=None,
        cache=None,
        return_attention_scores=False,
        training=None,
    ):
        check_last_dim(questions, self.d_model, "questions")
        check_last_dim(enc_output, self.d_model, "enc_output")
        attention_mask = None
        if enc_output_mask is not None:
            # (batch, 1, source_len)
            attention_mask = key_padding_attention_mask(enc_output_mask)

        residual = questions
        x = self.adjust.pre_norm(questions)
        outputs = self.rehearsal(
            query=x,
            value=enc_output,
            attention_mask=attention_mask,
            cache=cache,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        x = self.adjust(outputs[0], residual, training=training)
        # The read-only cache comes back unchanged; drop it.
        scores = outputs[-1] if return_attention_scores else None
        return (x, scores) if return_attention_scores else x

    def compute_cache(self, enc_output):
        """The show's keys and values, projected once per source.

        # (batch, 2, source_len, num_heads, head_dim)
        """
        return self.rehearsal.compute_cache(enc_output)

    def compute_output_shape(self, questions_shape, enc_output_shape=None):
        return questions_shape
