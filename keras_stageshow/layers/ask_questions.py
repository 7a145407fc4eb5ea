"""`AskQuestions`: the decoder's masked self-attention block."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.arguments import ADJUST_ARGUMENTS
from keras_stageshow.layers.arguments import BLOCK_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import rehearsal_arguments
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.arguments import sublayer_arguments
from keras_stageshow.layers.masks import resolve_padding_mask
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import split_outputs


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AskQuestions(keras.layers.Layer):
    """Ask questions: masked (causal) multi-head self-attention, then Adjust.

    The committee asks questions of itself: each target position attends to
    itself and earlier positions only (the look-ahead mask, paper section
    3.2.3), never to the future and never to padding. Then `Adjust`.

    During the awards ceremony (cached decoding) `call` takes one new token
    at a time with a key/value cache of the earlier ones (`empty_cache`)
    and returns `(output, self_attention_cache)`.

    Args:
        num_heads: int, attention heads; must divide `d_model`.
        dropout_rate: float, dropout on the attention output.
        attention_dropout_rate: float, dropout on attention weights.
        norm_first: bool, pre-norm instead of post-norm.
        layer_norm_epsilon: float.
        kernel_initializer, bias_initializer: for the attention projections.
        **kwargs: base layer keyword arguments.

    Call arguments:
        target: `(batch, target_len, d_model)`.
        padding_mask: optional boolean `(batch, target_len)` (or, when not
            given, the input's Keras mask), True = real token.
        return_attention_scores: bool, also return the attention weights.
        training: bool, whether dropout is active.
        self_attention_cache: optional, for one decoding step: `target` is
            `(batch, 1, d_model)`, the token at
            `self_attention_cache_update_index`, and attends to itself and
            the cached earlier tokens (the look-ahead mask is the only mask).
        self_attention_cache_update_index: int, the step's position.
        cache_write: how the step writes the cache (`layers/kv_cache.py`).

    Returns `target`'s update `(batch, target_len, d_model)`, or
    `(output, scores)`, or with a cache `(output, self_attention_cache)`.

    Example:
    >>> ask = AskQuestions(num_heads=2)
    >>> ask(np.ones((2, 5, 16), "float32")).shape
    (2, 5, 16)

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

    def build(self, target_shape):
        check_rank(target_shape, 3, "target", "of shape (batch, seq_len, d_model)")
        self.d_model = target_shape[-1]
        self.rehearsal = Rehearsal(
            **rehearsal_arguments(self, "target's last dimension"),
            name="self_attention",
        )
        self.rehearsal.build(target_shape, target_shape)
        self.adjust = Adjust(
            **sublayer_arguments(self, ADJUST_ARGUMENTS), name="adjust"
        )
        self.adjust.build(target_shape)
        self.built = True

    def call(
        self,
        target,
        padding_mask=None,
        return_attention_scores=False,
        training=None,
        mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cache_write="slice_update",
    ):
        check_last_dim(target, self.d_model, "target")
        cached = self_attention_cache is not None
        if cached and self_attention_cache_update_index is None:
            raise ValueError(
                "`self_attention_cache` needs `self_attention_cache_update_index`, "
                "the position of the step's token."
            )
        padding_mask = resolve_padding_mask(padding_mask, mask)
        residual = target
        x = self.adjust.pre_norm(target)
        outputs = self.rehearsal(
            query=x,
            value=x,
            # (batch, target_len); Rehearsal adds the look-ahead mask.
            query_mask=padding_mask,
            value_mask=padding_mask,
            use_causal_mask=True,
            return_attention_scores=return_attention_scores,
            training=training,
            cache=self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            cache_write=cache_write,
        )
        x, scores_or_cache = split_outputs(outputs, return_attention_scores or cached)
        x = self.adjust(x, residual, training=training)
        return x if scores_or_cache is None else (x, scores_or_cache)

    def empty_cache(self, batch_size, length, cache_write="slice_update"):
        """A zero key/value cache for `length` decoding steps (see
        `Rehearsal.empty_cache`)."""
        return self.rehearsal.empty_cache(batch_size, length, cache_write)

    def compute_output_shape(self, target_shape):
        return target_shape

    def get_config(self):
        config = super().get_config()
        config.update(arguments_config(self, BLOCK_ARGUMENTS))
        return config
