"""`AskQuestions`: the decoder's masked self-attention block."""

import keras

from keras_stageshow.layers.adjust import Adjust
from keras_stageshow.layers.masks import resolve_padding_mask
from keras_stageshow.layers.rehearsal import Rehearsal
from keras_stageshow.layers.utils import check_heads
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rank
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_stageshow")
class AskQuestions(keras.layers.Layer):
    """Ask questions: masked (causal) multi-head self-attention, then Adjust.

    The committee asks questions of itself: each target position attends to
    itself and earlier positions only (the look-ahead mask, paper section
    3.2.3), never to the future and never to padding. Then `Adjust`.

    During the awards ceremony (cached decoding) `call_with_cache` takes one
    new token at a time with a key/value cache of the earlier ones
    (`empty_cache`) and returns `(output, updated_cache)`.

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

    Returns `target`'s update `(batch, target_len, d_model)`, or
    `(output, scores)`.

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
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.dropout_rate = check_rate(dropout_rate, "dropout_rate")
        self.attention_dropout_rate = check_rate(
            attention_dropout_rate, "attention_dropout_rate"
        )
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, target_shape):
        check_rank(target_shape, 3, "target", "of shape (batch, seq_len, d_model)")
        self.d_model = target_shape[-1]
        self.rehearsal = Rehearsal(
            self.num_heads,
            check_heads(self.d_model, self.num_heads, "target's last dimension"),
            dropout=self.attention_dropout_rate,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.rehearsal.build(target_shape, target_shape)
        self.adjust = Adjust(
            self.dropout_rate,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="adjust",
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
    ):
        check_last_dim(target, self.d_model, "target")
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
        )
        x, scores = outputs if return_attention_scores else (outputs, None)
        x = self.adjust(x, residual, training=training)
        return (x, scores) if return_attention_scores else x

    def empty_cache(self, batch_size, length, cache_write="slice_update"):
        """A zero key/value cache for `length` decoding steps (see
        `Rehearsal.empty_cache`)."""
        return self.rehearsal.empty_cache(batch_size, length, cache_write)

    def call_with_cache(
        self, target, cache, cache_update_index, cache_write="slice_update"
    ):
        """One decoding step: `target` `(batch, 1, d_model)` is the token at
        `cache_update_index`; it attends to itself and the cached earlier
        tokens (real tokens only: the look-ahead mask is the only mask).
        Returns `(output, cache)`."""
        residual = target
        x = self.adjust.pre_norm(target)
        x, cache = self.rehearsal.call_with_cache(
            x, cache, cache_update_index, cache_write=cache_write
        )
        return self.adjust(x, residual, training=False), cache

    def compute_output_shape(self, target_shape):
        return target_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
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
