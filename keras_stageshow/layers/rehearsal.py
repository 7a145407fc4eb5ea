"""`Rehearsal`: multi-head attention, on Keras's public API only."""

import keras
from keras import ops

from keras_stageshow.layers import fused_projection
from keras_stageshow.layers import kv_cache
from keras_stageshow.layers.arguments import PROJECTION_ARGUMENTS
from keras_stageshow.layers.arguments import arguments_config
from keras_stageshow.layers.arguments import store_arguments
from keras_stageshow.layers.dropout import Dropout
from keras_stageshow.layers.masks import causal_mask
from keras_stageshow.layers.masks import merge_attention_masks
from keras_stageshow.layers.masks import resolve_padding_mask
from keras_stageshow.layers.utils import check_last_dim
from keras_stageshow.layers.utils import check_positive_int
from keras_stageshow.layers.utils import check_rate
from keras_stageshow.layers.utils import clone_initializer

# Large but finite: softmax of a fully masked row stays finite (uniform, then
# zeroed by the mask), where -inf would give NaN.
_FLOAT32_MASK_VALUE = -1e30


@keras.saving.register_keras_serializable(package="keras_stageshow")
class Rehearsal(keras.layers.Layer):
    """Rehearsal: multi-head scaled dot-product attention (paper section 3.2).

    The script is read three ways: queries (the plots), keys (the roles) and
    values (the characteristics). When all three are the same sequence this
    is self-attention, "a solo performance"; the Oscar assessment uses the
    same layer with queries from the decoder and keys/values from the show
    (cross-attention).

    It computes what Keras's `MultiHeadAttention` computes, with the same
    variables (four `EinsumDense` projections named `query_dense`,
    `key_dense`, `value_dense`, `output_dense`, so weights move between the
    two with `set_weights`), composed from public Keras API rather than
    subclassed, and with four additions:

    - fused projections: Q/K/V (self-attention) or K/V (one sequence) run
      as one 2-D matmul on the flattened kernels, much faster to train on
      TensorFlow (`layers/fused_projection.py`);
    - a key/value cache for the awards ceremony (`call`'s `cache`
      arguments, made by `empty_cache` and `compute_cache`), so a decoding
      step attends over stored keys and values instead of re-projecting the
      prefix, through the same projections and attention as `call` without;
    - softmax always in float32 with boolean masking (no `-1e9` that
      overflows float16), also on the path that returns attention weights;
    - a query with no visible key at all (a row that is entirely padding)
      gets a zero attention result instead of an average over padding.

    Masks are boolean, `True` = may attend (see `layers/masks.py` for how
    they are combined and which wins).

    Args:
        num_heads: int, number of heads `h`.
        key_dim: int, size of each query/key head `d_k = d_model / h`.
        value_dim: int, size of each value head `d_v` (default `key_dim`).
        dropout: float, dropout on the attention weights.
        use_bias: bool, whether the projections have biases.
        output_shape: int, the output width (default: the query's width).
        kernel_initializer, bias_initializer: for the four projections (each
            gets its own clone).
        kernel_regularizer, bias_regularizer, kernel_constraint,
        bias_constraint: for the four projections.
        seed: int, seed of the attention dropout.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `(batch, query_len, d_model)`.
        value: `(batch, key_len, d_model)`; not needed with a cross-attention
            `cache`.
        key: optional `(batch, key_len, d_model)`, defaults to `value`.
        attention_mask: optional boolean, broadcastable to
            `(batch, query_len, key_len)`.
        query_mask, value_mask, key_mask: optional boolean padding masks
            `(batch, len)`; Keras fills them from the inputs' Keras masks.
            `key_mask` wins over `value_mask` when both are given.
        use_causal_mask: bool, add the look-ahead mask.
        return_attention_scores: bool, also return the attention weights
            `(batch, num_heads, query_len, key_len)`.
        training: bool, whether attention dropout is active.
        cache: optional `(keys, values)`, each `(batch, num_heads, len, dim)`,
            for one decoding step (its query is a real token: no
            `query_mask`). Self-attention (an `empty_cache`): the step's keys
            and values are written at `cache_update_index`, and the query
            sees positions `0 .. cache_update_index`. Cross-attention (a
            `compute_cache`, no index): read as it is, `value_mask` over it.
        cache_update_index: int, the step's position.
        cache_write: how the step is written, `"slice_update"` or
            `"in_place"` (`layers/kv_cache.py`).

    Returns `output` `(batch, query_len, output_width)`, or
    `(output, scores)` with `return_attention_scores`, or with a `cache`
    `(output, cache)` (the cache updated, or as given for cross-attention).

    Example:
    >>> rehearsal = Rehearsal(num_heads=2, key_dim=8)
    >>> x = np.random.rand(1, 5, 16).astype("float32")
    >>> rehearsal(x, x).shape
    (1, 5, 16)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_positive_int(key_dim, "key_dim")
        self.value_dim = check_positive_int(
            key_dim if value_dim is None else value_dim, "value_dim"
        )
        self.dropout = check_rate(dropout, "dropout")
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (tuple, list)) and len(output_shape) == 1:
            output_shape = output_shape[0]
        if output_shape is not None:
            output_shape = check_positive_int(output_shape, "output_shape")
        self.output_width = output_shape
        store_arguments(self, locals(), PROJECTION_ARGUMENTS)
        self.seed = seed
        self.supports_masking = True

    def build(self, query_shape, value_shape, key_shape=None):
        for name, shape in (("query", query_shape), ("value", value_shape)):
            if shape is None or len(shape) != 3:
                raise ValueError(
                    "`Rehearsal` takes rank-3 inputs (batch, seq_len, features); "
                    f"received {name} shape {None if shape is None else tuple(shape)}."
                )
        key_shape = value_shape if key_shape is None else key_shape
        self.d_model = query_shape[-1]
        output_width = self.output_width or self.d_model
        # The projections, as in Keras's MultiHeadAttention (same variables).
        self.query_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.key_dim), "de", "query"
        )
        self.query_dense.build(query_shape)
        self.key_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.key_dim), "de", "key"
        )
        self.key_dense.build(key_shape)
        self.value_dense = self._projection(
            "abc,cde->abde", (None, self.num_heads, self.value_dim), "de", "value"
        )
        self.value_dense.build(value_shape)
        self.output_dense = self._projection(
            "abcd,cde->abe", (None, output_width), "e", "attention_output"
        )
        self.output_dense.build(
            (query_shape[0], query_shape[1], self.num_heads, self.value_dim)
        )
        # Dropout on the attention weights.
        self.attention_dropout = Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def _projection(self, equation, output_shape, bias_axes, name):
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
            name=name,
        )

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        cache=None,
        cache_update_index=None,
        cache_write="slice_update",
    ):
        check_last_dim(query, None, "query")
        if cache is not None and return_attention_scores:
            raise ValueError("Attention scores come without a `cache` only.")
        key_padding_mask = resolve_padding_mask(key_mask, value_mask)
        causal = None
        if cache is None:
            # 3 x (batch, len, num_heads, dim)
            query, key, value = self._project_heads(query, key, value)
            if use_causal_mask:
                causal = causal_mask(ops.shape(query)[1], ops.shape(key)[1])
        elif cache_update_index is None:
            # Cross-attention step over `compute_cache`'s keys and values.
            (query,) = self._project(query, self.query_dense)
            key, value = cache
            query_mask = None
        else:
            # Self-attention step: the token's keys and values join the
            # cache, and the look-ahead mask over it is the only mask.
            query, cache, (key, value, causal) = self._add_to_cache(
                query, key, value, cache, cache_update_index, cache_write
            )
            query_mask = key_padding_mask = None
        attention_mask = merge_attention_masks(
            attention_mask,
            key_padding_mask=key_padding_mask,
            query_padding_mask=query_mask,
            causal=causal,
        )
        output, scores = self._attend(
            query, key, value, attention_mask, training, return_attention_scores,
            head_major=cache is not None,
        )
        # (batch, query_len, output_width)
        output = fused_projection.project_output(
            output, self.output_dense, self.use_bias
        )
        if cache is not None:
            return output, cache
        return (output, scores) if return_attention_scores else output

    def compute_cache(self, value, key=None):
        """The keys and values of a whole sequence, projected once (the show,
        for cross-attention during decoding).

        # (keys, values), each (batch, num_heads, key_len, head_dim)
        """
        keys, values = self.project_key_value(value if key is None else key, value)
        return kv_cache.heads_first(keys), kv_cache.heads_first(values)

    def empty_cache(self, batch_size, length, cache_write="slice_update"):
        """A zero self-attention cache for `length` decoding steps.

        # (keys, values), each (batch, num_heads, length, head_dim)
        """
        return kv_cache.empty_cache(
            batch_size, self.num_heads, length, self.key_dim, self.value_dim,
            self.compute_dtype, cache_write,
        )

    def _add_to_cache(self, query, key, value, cache, index, cache_write):
        """The self-attention step of the token at `index`: its Q, K and V,
        K and V written into `cache` (`layers/kv_cache.py`). Returns
        `(query, cache, (keys, values, mask))`, what the query attends to.
        """
        # Without XLA, fusing would concatenate the kernels anew at every
        # step: one matmul each is faster (measured: 5-50%). XLA
        # hoists the concatenation out of the loop: one matmul.
        fuse = kv_cache.check_cache_write(cache_write) != "in_place"
        query, key, value = self._project_heads(query, key, value, fuse)
        # (batch, 1, heads, dim) -> (batch, heads, 1, dim)
        cache = kv_cache.write_cache(
            cache,
            index,
            kv_cache.heads_first(key),
            kv_cache.heads_first(value),
            cache_write,
        )
        return query, cache, kv_cache.visible_cache(cache, index, cache_write)

    def _project_heads(self, query, key, value, fuse=True):
        """Q, K and V (`key` defaults to `value`); projections that read the
        same sequence share one matmul (with `fuse`).

        # -> 3 x (batch, len, num_heads, dim)
        """
        if value is None:
            raise ValueError("`Rehearsal` needs a `value` unless given a `cache`.")
        check_last_dim(value, None, "value")
        key = value if key is None else key
        projections = (self.query_dense, self.key_dense, self.value_dense)
        if not fuse:
            return [
                self._project(x, dense)[0]
                for x, dense in zip((query, key, value), projections)
            ]
        if query is key and key is value:
            # Self-attention: Q, K and V in one matmul.
            return self._project(query, *projections)
        (query,) = self._project(query, self.query_dense)
        return (query, *self.project_key_value(key, value))

    def project_key_value(self, key, value):
        """K and V, in one matmul when they read the same sequence.

        # (batch, key_len, d_model) -> 2 x (batch, key_len, num_heads, dim)
        """
        if key is value:
            return tuple(self._project(key, self.key_dense, self.value_dense))
        (key,) = self._project(key, self.key_dense)
        (value,) = self._project(value, self.value_dense)
        return key, value

    def _project(self, x, *projections):
        """`x` through `projections` in one 2-D matmul.

        # x: (batch, len, d_model) -> [(batch, len, num_heads, dim)] per projection
        """
        return fused_projection.project(x, projections, self.num_heads, self.use_bias)

    def _attend(
        self, query, key, value, attention_mask, training, return_scores,
        head_major=False,
    ):
        """Scaled dot-product attention of projected heads.

        # query: (batch, query_len, num_heads, key_dim)
        # key, value: (batch, key_len, num_heads, dim), or with `head_major`
        #   a cache's (batch, num_heads, key_len, dim)
        # attention_mask: broadcastable to (batch, query_len, key_len)
        # -> (batch, query_len, num_heads, value_dim), weights or None
        """
        q, kv = ("bnth", "bnsh") if head_major else ("btnh", "bsnh")
        # With a cache, the query as the cache: (batch, heads, query_len, dim).
        query = kv_cache.heads_first(query) if head_major else query
        head_mask = None
        if attention_mask is not None:
            # (batch, 1, query_len, key_len): same mask for every head.
            head_mask = ops.expand_dims(attention_mask, 1)
        # Scale the query before the matmul, not the logits after it: the
        # logits then stay sqrt(d_k) times further from float16's limit.
        query = query * ops.cast(self.key_dim**-0.5, query.dtype)
        # keras.ops.dot_product_attention takes values as wide as the keys
        # (JAX fails otherwise) and the (batch, len, heads, dim) layout; a
        # `value_dim` of its own, or a cache, takes the explicit way.
        fusable = not head_major and key.shape[-1] == value.shape[-1]
        if fusable and not (return_scores or (self.dropout > 0.0 and training)):
            # keras.ops.dot_product_attention computes the softmax in float32
            # and masks with a dtype-safe constant; on JAX/GPU it can use a
            # fused kernel.
            output = ops.dot_product_attention(
                query, key, value, mask=head_mask, scale=1.0
            )
            weights = None
        else:
            # (batch, num_heads, query_len, key_len)
            logits = ops.cast(ops.einsum(f"{q},{kv}->bnts", query, key), "float32")
            if head_mask is not None:
                logits = ops.where(head_mask, logits, _FLOAT32_MASK_VALUE)
            weights = ops.softmax(logits, axis=-1)
            if head_mask is not None and return_scores:
                # A row that sees nothing: zero scores (its output is zeroed
                # below).
                weights = weights * ops.cast(head_mask, weights.dtype)
            weights = ops.cast(weights, value.dtype)
            dropped = self.attention_dropout(weights, training=training)
            # (batch, query_len, num_heads, value_dim)
            output = ops.einsum(f"bnts,{kv}->{q}", dropped, value)
            if head_major:
                output = kv_cache.heads_first(output)
        if attention_mask is not None:
            # A query that may see no key at all gets zeros, not an average
            # of padding. (batch, query_len, 1, 1)
            visible = ops.any(attention_mask, axis=-1, keepdims=True)
            output = ops.where(ops.expand_dims(visible, -1), output, 0)
        return output, weights

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return (*query_shape[:-1], self.output_width or query_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            value_dim=self.value_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            output_shape=self.output_width,
            seed=self.seed,
        )
        config.update(arguments_config(self, PROJECTION_ARGUMENTS))
        return config
