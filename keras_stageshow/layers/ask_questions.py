import keras

from keras_stageshow.layers.base import StageBlock
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import key_padding_attention_mask


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AskQuestions(StageBlock):
    """Ask questions: masked (causal) multi-head self-attention, then Adjust.

    The committee asks questions of itself: each target position attends to
    itself and earlier positions only (the look-ahead mask, paper section
    3.2.3), never to the future and never to padding. Then `Adjust`.

    During the awards ceremony (cached decoding) the layer takes one new
    token at a time with a key/value `cache` of the earlier ones and returns
    the updated cache.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        dropout_rate: float, dropout on the attention output.
        attention_dropout_rate: float, dropout on attention weights.
        norm_first: bool, pre-norm instead of post-norm.
        layer_norm_epsilon, kernel_initializer, bias_initializer: as in
            `PracticeRound`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        target: `(batch, target_len, d_model)`.
        padding_mask: optional boolean `(batch, target_len)` (or the input's
            Keras mask), True = real token. Not used with a `cache`: cached
            decoding feeds real tokens only, guarded by the look-ahead mask.
        cache: optional `(batch, 2, max_len, num_heads, head_dim)` keys and
            values of earlier steps; requires `cache_update_index`.
        cache_update_index: int, position of `target`'s first token.
        return_attention_scores: bool, also return the attention weights.
        training: bool, whether dropout is active.

    Returns the output, then the updated cache if one was given, then the
    attention weights if asked for.

    Example:
    >>> ask = AskQuestions(num_heads=2)
    >>> ask(np.ones((2, 5, 16), "float32")).shape
    (2, 5, 16)
    """

    def build(self, target_shape):
        self._check_input_shape(target_shape, "target")
        self.d_model = target_shape[-1]
        self.rehearsal = self._make_rehearsal(self.d_model, "self_attention")
        self.rehearsal.build(target_shape, target_shape)
        self.adjust = self._make_adjust("adjust")
        self.adjust.build(target_shape)
        self.built = True

    def call(
        self,
        target,
        padding_mask=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        training=None,
        mask=None,
    ):
        check_last_dim(target, self.d_model, "target")
        if (cache is None) != (cache_update_index is None):
            raise ValueError(
                "`cache` and `cache_update_index` go together: pass both for "
                "cached decoding, or neither."
            )
        padding_mask = mask if padding_mask is None else padding_mask
        if cache is not None or padding_mask is None:
            attention_mask = None
        else:
            # (batch, 1, target_len); the look-ahead part is added below.
            attention_mask = key_padding_attention_mask(padding_mask)

        residual = target
        x = self.adjust.pre_norm(target)
        outputs = self.rehearsal(
            query=x,
            value=x,
            attention_mask=attention_mask,
            cache=cache,
            cache_update_index=cache_update_index,
            use_causal_mask=True,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        x = self.adjust(outputs[0], residual, training=training)
        outputs = (x,) + outputs[1:]
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_output_shape(self, target_shape):
        return target_shape
