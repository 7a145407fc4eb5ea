"""The self-attention cache's writes (layers/kv_cache.py): both give the
same values, and TensorFlow's XLA-free one still writes in place."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_stageshow.layers import kv_cache

SHAPE = (2, 3, 6, 4)  # (batch, heads, length, dim)


def _fill(cache_write):
    cache = kv_cache.empty_cache(2, 3, 6, 4, 4, "float32", cache_write)
    for index in range(6):
        # Each (batch, head) row gets its own value, to catch a wrong row.
        new = index + 10.0 * np.arange(6, dtype="float32").reshape(2, 3, 1, 1)
        new = np.broadcast_to(new, (2, 3, 1, 4))
        cache = kv_cache.write_cache(cache, index, new, -new, cache_write)
    return cache


@pytest.mark.parametrize(
    "cache_write",
    [
        pytest.param(write, marks=pytest.mark.tf_only) if write == "in_place" else write
        for write in kv_cache.CACHE_WRITES
    ],
)
def test_both_cache_writes_fill_one_row_a_step(cache_write):
    expected = np.broadcast_to(
        np.arange(6.0)[None, None, :, None]
        + 10.0 * np.arange(6.0).reshape(2, 3, 1, 1),
        SHAPE,
    )
    if keras.backend.backend() == "tensorflow":
        # As the ceremony runs them: "slice_update" under XLA, "in_place" without.
        run = tf.function(
            lambda: _fill(cache_write), jit_compile=cache_write == "slice_update"
        )
    else:
        run = lambda: _fill(cache_write)  # noqa: E731
    keys, values = (keras.ops.convert_to_numpy(part) for part in run())
    np.testing.assert_array_equal(keys, expected)
    np.testing.assert_array_equal(values, -expected)


@pytest.mark.tf_only  # TensorFlow's own ops
def test_in_place_write_reuses_the_buffer_and_each_run_gets_a_fresh_one():
    """`InplaceUpdate` must write into its input's own buffer (that is what
    makes a step O(1)), and `Empty` must give every run its own zeroed
    buffer (so concurrent requests and later calls never see each other's
    keys). If TensorFlow changes either, this fails."""

    @tf.function(autograph=False)
    def write_twice(row):
        (cache,) = kv_cache.empty_cache(4, 1, 1, 2, 2, "float32", "in_place")[:1]
        cache = tf.reshape(cache, (4, 1, 1, 2))  # rows along the first axis
        first = tf.raw_ops.InplaceUpdate(x=cache, i=[0], v=tf.ones((1, 1, 1, 2)))
        second = tf.raw_ops.InplaceUpdate(x=first, i=row, v=2 * tf.ones((1, 1, 1, 2)))
        # Read `first` after `second` ran: in place, it shows both writes.
        with tf.control_dependencies([second]):
            return tf.identity(first)

    once = write_twice(tf.constant([1])).numpy()
    again = write_twice(tf.constant([2])).numpy()
    np.testing.assert_array_equal(once[:, 0, 0, 0], [1, 2, 0, 0])
    np.testing.assert_array_equal(again[:, 0, 0, 0], [1, 0, 2, 0])


def test_unknown_cache_write_is_rejected_by_name():
    with pytest.raises(ValueError, match="cache_write"):
        kv_cache.check_cache_write("copy")


def test_in_place_is_refused_by_name_on_another_backend():
    if keras.backend.backend() == "tensorflow":
        assert kv_cache.check_cache_write("in_place") == "in_place"
    else:
        with pytest.raises(ValueError, match="slice_update"):
            kv_cache.check_cache_write("in_place")


def test_take_rows_gathers_rows_like_take():
    """Beam search reorders caches and hypotheses with `take_rows` (one
    gather on TensorFlow, without `take`'s negative-index ops)."""
    x = np.arange(24, dtype="float32").reshape(4, 3, 2)
    rows = np.array([3, 0, 0, 2], "int32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(kv_cache.take_rows(x, rows)), x[rows]
    )
    keys, values = kv_cache.reorder_cache((x, -x), rows)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(values), -x[rows])
