"""The self-attention key/value cache of the awards ceremony: how it is made
and how one step's keys and values are written into it.

A cache is a pair `(keys, values)`, each `(batch, num_heads, cache_len,
head_dim)`: head-major, the layout attention's batched matmuls read without
a transpose (a step's one token reaches it by a reshape, `heads_first`).
How a step's row is written (and so what the step then reads,
`visible_cache`) is chosen explicitly by the decoding core, never by hidden
state:

- `"slice_update"`: `keras.ops.slice_update`, a dynamic-update-slice. XLA
  (and JAX) update the buffer in place. With TensorFlow it lowers to the
  XLA-only op `XlaDynamicUpdateSlice`, so it is for XLA-compiled code only.
- `"in_place"`: TensorFlow without XLA (the SavedModel TF Serving runs).
  TensorFlow has no public in-place row update; `tf.tensor_scatter_nd_update`
  would do, but it reuses its input's buffer only when nothing else holds
  it, which a `while_loop` variable never satisfies, so it copies the whole
  cache every step (measured: its cost grows with the cache length). The
  core ops `Empty` (a fresh buffer per run, never constant-folded) and
  `InplaceUpdate` (writes rows of its input's own buffer), the pair
  `tensorflow/python/ops/inplace_ops.py` is built on, make the write O(1):
  the cache, viewed as `(batch * num_heads * cache_len, head_dim)` rows (a
  reshape, no copy), gets the `batch * num_heads` rows of this position.
  They are safe here because a cache buffer is private to one decoding run
  and every read of a step's cache precedes the next step's write in the
  data flow (the next token depends on this step's attention).
  `tests/test_kv_cache.py` fails if TensorFlow changes either behaviour.
"""

from keras import backend
from keras import ops

from keras_stageshow.layers.masks import causal_mask

CACHE_WRITES = ("slice_update", "in_place")


def check_cache_write(cache_write):
    if cache_write not in CACHE_WRITES:
        raise ValueError(
            f"`cache_write` must be one of {CACHE_WRITES}; received {cache_write!r}."
        )
    if cache_write == "in_place" and backend.backend() != "tensorflow":
        raise ValueError(
            "`cache_write='in_place'` is TensorFlow's XLA-free write; with the "
            f"{backend.backend()!r} backend use 'slice_update'."
        )
    return cache_write


def empty_cache(batch, num_heads, length, key_dim, value_dim, dtype, cache_write):
    """A zero `(keys, values)` pair.

    # keys: (batch, num_heads, length, key_dim); values: (..., value_dim)
    """
    check_cache_write(cache_write)
    shapes = [(batch, num_heads, length, dim) for dim in (key_dim, value_dim)]
    if cache_write == "in_place":
        import tensorflow as tf

        return tuple(
            tf.raw_ops.Empty(shape=tf.stack(shape), dtype=dtype, init=True)
            for shape in shapes
        )
    return tuple(ops.zeros(shape, dtype) for shape in shapes)


def write_cache(cache, index, keys, values, cache_write):
    """`cache` with `keys`/`values` `(batch, num_heads, 1, head_dim)` written
    at position `index`."""
    if cache_write != "in_place":
        return tuple(
            ops.slice_update(old, [0, 0, index, 0], ops.cast(new, old.dtype))
            for old, new in zip(cache, (keys, values))
        )
    import tensorflow as tf

    # The rows of position `index` in the (batch * heads * length, dim) view
    # of either part: every length-th row from `index`.
    shape = tf.shape(cache[0])
    rows = tf.range(tf.cast(index, "int32"), shape[0] * shape[1] * shape[2], shape[2])

    def write(old, new):
        dim = old.shape[-1]
        flat = tf.raw_ops.InplaceUpdate(
            x=tf.reshape(old, [-1, dim]),
            i=rows,
            v=tf.reshape(tf.cast(new, old.dtype), [-1, dim]),
        )
        return tf.ensure_shape(tf.reshape(flat, tf.shape(old)), old.shape)

    return write(cache[0], keys), write(cache[1], values)


def visible_cache(cache, index, cache_write):
    """What the step at position `index` attends to once its row is
    written: `(keys, values, mask)`.

    With `"in_place"` (no XLA) shapes may change from step to step: the
    filled prefix, no mask (a copy of the prefix, but a decoding run that
    ends long before its bucket's last step reads that much less than the
    whole cache: measured 8% faster a step at batch 32 for 16 of 80 steps,
    the same for 32 of 32). With `"slice_update"` XLA needs one shape: the
    whole cache under the look-ahead mask, which hides the rows not yet
    written.
    """
    keys, values = cache
    if cache_write == "in_place":
        # (batch, heads, index + 1, dim)
        filled = index + 1
        return keys[:, :, :filled], values[:, :, :filled], None
    # (1, 1, cache_len)
    return keys, values, causal_mask(1, ops.shape(keys)[2], index)


def reorder_cache(cache, rows):
    """The cache of the rows `rows` (beam search: each beam takes its
    parent's cache). # rows: (batch,)"""
    return tuple(take_rows(part, rows) for part in cache)


def take_rows(x, rows):
    """`x[rows]`, rows along the first axis, `rows` int32 in `[0, len(x))`.

    On TensorFlow one `GatherV2`: `keras.ops.take` adds five ops that wrap
    negative indices, which rows never are. # rows: (n,) -> (n, ...)
    """
    if backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(x, rows)
    return ops.take(x, rows, axis=0)


def heads_first(x):
    """`(batch, len, heads, dim)` <-> `(batch, heads, len, dim)`, the cache's
    layout: a reshape, not a copy, for a decoding step's one token."""
    a, b = x.shape[1], x.shape[2]
    if (a == 1 and b is not None) or (b == 1 and a is not None):
        return ops.reshape(x, (-1, b, a, x.shape[3]))
    return ops.transpose(x, (0, 2, 1, 3))
