import keras
from keras import ops

from keras_stageshow.layers.utils import causal_attention_mask
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import key_padding_attention_mask
from keras_stageshow.layers.utils import merge_attention_masks
from keras_stageshow.layers.utils import update_along


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Rehearsal(keras.layers.MultiHeadAttention):
    """Rehearsal: multi-head scaled dot-product attention (paper section 3.2).

    The script is read three ways: queries (the plots), keys (the roles) and
    values (the characteristics). When all three are the same sequence this
    is self-attention, "a solo performance"; the Oscar assessment uses the
    same layer with queries from the decoder and keys/values from the show
    (cross-attention).

    This is Keras's `MultiHeadAttention` with three changes, each because the
    parent cannot do it:

    - a key/value cache (`cache`, `cache_update_index`) for the awards
      ceremony, so decoding a token attends over stored keys and values
      instead of re-projecting the whole prefix;
    - softmax always in float32 with boolean masking (no `-1e9` that
      overflows float16), also on the path that returns attention weights;
    - a query with no visible key at all (a row that is entirely padding)
      gets a zero attention result (so the layer returns the output
      projection's bias) instead of an average over padding.

    Masks are boolean, `True` = may attend. `attention_mask` is broadcastable
    to `(batch, query_len, key_len)`; `value_mask` / `key_mask`
    `(batch, key_len)` and `query_mask` `(batch, query_len)` are merged into
    it, and Keras fills them from the inputs' Keras masks when not given.

    Args:
        num_heads: int, number of heads `h`.
        key_dim: int, size of each head `d_k = d_model / h`.
        **kwargs: every other `keras.layers.MultiHeadAttention` argument
            (`dropout`, `use_bias`, `kernel_initializer`, ...). Inputs are
            rank 3, `(batch, seq_len, features)`.

    Call arguments:
        query: `(batch, query_len, d_model)`.
        value: `(batch, key_len, d_model)`.
        key: optional `(batch, key_len, d_model)`, defaults to `value`.
        attention_mask: optional boolean mask, see above.
        cache: optional `(batch, 2, cache_len, num_heads, key_dim)` stacked
            projected keys and values. With `cache_update_index`, the new
            keys/values of `key`/`value` are written at that position and the
            updated cache is returned (self-attention during decoding).
            Without it, the cache is read as-is and `key`/`value` are not
            projected (cross-attention over a precomputed show).
        cache_update_index: int scalar, where to write into `cache`.
        use_causal_mask: bool, add the look-ahead mask (offset by
            `cache_update_index` when caching).
        return_attention_scores: bool, also return the attention weights
            `(batch, num_heads, query_len, key_len)`.
        training: bool, whether attention dropout is active.

    Returns `output`, then the updated `cache` if one was given, then the
    attention weights if asked for.

    Example:
    >>> rehearsal = Rehearsal(num_heads=2, key_dim=8)
    >>> x = np.random.rand(1, 5, 16).astype("float32")
    >>> rehearsal(x, x).shape
    (1, 5, 16)
    """

    def __init__(self, num_heads, key_dim, **kwargs):
        # After build Keras records the sequence axis, (1,), in the config.
        if kwargs.get("attention_axes") not in (None, 1, (1,), [1]):
            raise ValueError(
                "`Rehearsal` does not support `attention_axes`; attention "
                "runs over the sequence axis of rank-3 inputs."
            )
        for name in ("flash_attention", "sliding_window"):
            if kwargs.get(name) not in (None, False):
                raise ValueError(
                    f"`Rehearsal` does not support `{name}`; attention runs "
                    "over the sequence axis of rank-3 inputs."
                )
        output_shape = kwargs.get("output_shape")
        if output_shape is not None and not (
            isinstance(output_shape, int) or len(tuple(output_shape)) == 1
        ):
            raise ValueError(
                "`Rehearsal` takes `output_shape` as one int (the output "
                f"width); received {output_shape!r}."
            )
        if kwargs.get("use_gate"):
            raise ValueError("`Rehearsal` does not support `use_gate=True`.")
        super().__init__(num_heads, key_dim, **kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        if len(query_shape) != 3 or len(value_shape) != 3:
            raise ValueError(
                "`Rehearsal` takes rank-3 inputs (batch, seq_len, features); "
                f"received query shape {tuple(query_shape)} and value shape "
                f"{tuple(value_shape)}."
            )
        super().build(query_shape, value_shape, key_shape)

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        cache=None,
        cache_update_index=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
    ):
        check_last_dim(query, None, "query")
        check_last_dim(value, None, "value")
        if key is None:
            key = value
        updating_cache = cache is not None and cache_update_index is not None
        reading_cache = cache is not None and cache_update_index is None

        # Masks: the key padding mask applies to keys we project now, or to a
        # read-only cache of the same length; a growing self-attention cache
        # is guarded by the causal mask alone.
        if updating_cache:
            key_padding = None
        else:
            key_padding = merge_attention_masks(key_mask, value_mask)
        if key_padding is not None:
            key_padding = key_padding_attention_mask(key_padding)
        if query_mask is not None:
            # (batch, query_len) -> (batch, query_len, 1)
            query_mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
        causal = None
        if use_causal_mask:
            key_len = ops.shape(cache)[2] if cache is not None else ops.shape(key)[1]
            causal = causal_attention_mask(
                ops.shape(query)[1],
                key_len,
                0 if cache_update_index is None else cache_update_index,
            )
        attention_mask = merge_attention_masks(
            attention_mask, key_padding, query_mask, causal
        )

        if reading_cache:
            # (batch, query_len, num_heads, key_dim)
            (query,) = self._project(query, self.query_dense)
            # (batch, key_len, num_heads, key_dim) each
            key, value = cache[:, 0, ...], cache[:, 1, ...]
        elif query is key and key is value:
            # Self-attention: Q, K and V in one matmul.
            query, key, value = self._project(
                query, self.query_dense, self.key_dense, self.value_dense
            )
        else:
            (query,) = self._project(query, self.query_dense)
            key, value = self._project_key_value(key, value)
        if updating_cache:
            # (batch, 2, cache_len, num_heads, key_dim)
            cache = update_along(
                cache, cache_update_index, ops.stack([key, value], axis=1), 2
            )
            key, value = cache[:, 0, ...], cache[:, 1, ...]

        output, scores = self._compute_attention(
            query,
            key,
            value,
            attention_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )
        # (batch, query_len, num_heads, value_dim) -> (batch, query_len, d_model)
        output = self._output_projection(output)

        outputs = (output,)
        if cache is not None:
            outputs += (cache,)
        if return_attention_scores:
            outputs += (scores,)
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_cache(self, value, key=None):
        """Projects a whole `value`/`key` sequence once, for a read-only cache.

        # (batch, 2, key_len, num_heads, key_dim)
        """
        key = value if key is None else key
        return ops.stack(self._project_key_value(key, value), axis=1)

    def _project_key_value(self, key, value):
        """K and V, in one matmul when they read the same sequence."""
        if key is value:
            return self._project(key, self.key_dense, self.value_dense)
        (key,) = self._project(key, self.key_dense)
        (value,) = self._project(value, self.value_dense)
        return key, value

    def _project(self, x, *projections):
        """`x` through one or more of the Q/K/V projections in ONE 2-D matmul.

        The parent calls each `EinsumDense` on its own; on TensorFlow that is
        a broadcasting BatchMatMulV2 whose kernel gradient is one matrix per
        sequence summed over the batch, the largest cost in the profile of a
        training step (benchmarks/README.md). The same kernels and biases,
        flattened to `(d_model, heads * dim)` and concatenated, make one
        `(batch * len, d_model)` matmul forward and two backward. The
        layers' variables and checkpoints are unchanged. Quantized
        projections (`model.quantize`) go through their own call.

        # x: (batch, len, d_model) -> [(batch, len, num_heads, dim)] per projection
        """
        if any(_quantized(p) for p in projections):
            # Quantized kernels need EinsumDense's own call (its scales).
            return [p(x) for p in projections]
        d_model = x.shape[-1]
        kernels = [ops.reshape(p.kernel, (d_model, -1)) for p in projections]
        widths = [k.shape[-1] for k in kernels]
        kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, 1)
        # (batch, len, sum(widths)); Keras's matmul is a 2-D MatMul here
        y = ops.matmul(x, ops.cast(kernel, x.dtype))
        if self._use_bias:
            biases = [ops.reshape(p.bias, (-1,)) for p in projections]
            bias = biases[0] if len(biases) == 1 else ops.concatenate(biases, 0)
            y = y + ops.cast(bias, y.dtype)
        parts = [y] if len(widths) == 1 else ops.split(
            y, [sum(widths[: i + 1]) for i in range(len(widths) - 1)], axis=-1
        )
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        return [
            ops.reshape(part, (batch, length, self._num_heads, -1)) for part in parts
        ]

    def _output_projection(self, x):
        """The output projection as one 2-D matmul (see `_project`).

        # x: (batch, len, num_heads, value_dim) -> (batch, len, output_dim)
        """
        dense = self.output_dense
        if _quantized(dense):
            return dense(x)
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        # (num_heads, value_dim, output_dim) -> (num_heads * value_dim, output_dim)
        kernel = ops.reshape(dense.kernel, (-1, dense.kernel.shape[-1]))
        x = ops.reshape(x, (batch, length, kernel.shape[0]))
        y = ops.matmul(x, ops.cast(kernel, x.dtype))
        if self._use_bias:
            y = y + ops.cast(dense.bias, y.dtype)
        return y

    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        **kwargs,
    ):
        # query: (batch, query_len, num_heads, key_dim)
        # key, value: (batch, key_len, num_heads, key_dim)
        # attention_mask: broadcastable to (batch, query_len, key_len)
        head_mask = None
        if attention_mask is not None:
            # (batch, 1, query_len, key_len): same mask for every head.
            head_mask = ops.expand_dims(attention_mask, 1)
        use_dropout = self._dropout > 0.0 and training
        # Scale the query before the matmul, not the logits after it: the
        # logits then stay sqrt(d_k) times further from float16's limit.
        query = query * ops.cast(self._inverse_sqrt_key_dim, query.dtype)
        if not (return_attention_scores or use_dropout):
            # keras.ops.dot_product_attention computes the softmax in float32
            # and masks with a dtype-safe constant; on JAX/GPU it can use a
            # fused kernel.
            output = ops.dot_product_attention(
                query, key, value, mask=head_mask, scale=1.0
            )
            weights = None
        else:
            # (batch, num_heads, query_len, key_len)
            logits = ops.cast(
                ops.einsum("btnh,bsnh->bnts", query, key), "float32"
            )
            if head_mask is not None:
                logits = ops.where(head_mask, logits, _FLOAT32_MASK_VALUE)
            weights = ops.softmax(logits, axis=-1)
            if head_mask is not None:
                weights = weights * ops.cast(head_mask, weights.dtype)
            weights = ops.cast(weights, value.dtype)
            dropped = self._dropout_layer(weights, training=training)
            # (batch, query_len, num_heads, key_dim)
            output = ops.einsum("bnts,bsnh->btnh", dropped, value)
        if attention_mask is not None:
            # A query that may see no key at all gets zeros, not an average
            # of padding. (batch, query_len, 1, 1)
            visible = ops.any(attention_mask, axis=-1, keepdims=True)
            output = ops.where(ops.expand_dims(visible, -1), output, 0)
        return output, weights


def _quantized(layer):
    return getattr(layer, "quantization_mode", None) is not None


# Large but finite: softmax of a fully masked row stays finite (uniform, then
# zeroed by the mask), where -inf would give NaN.
_FLOAT32_MASK_VALUE = -1e30
