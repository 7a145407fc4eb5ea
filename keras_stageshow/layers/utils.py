"""Input checks shared by the stage-show layers, the model and the decoding
core (each error names the argument and the fix), `split_outputs` and
`clone_initializer`.
Masks live in `layers/masks.py`.
"""

import numpy as np
from keras import KerasTensor
from keras import backend
from keras import ops

# Input checks. -------------------------------------------------------------


def check_rank(shape, rank, name, what):
    """Raises a ValueError naming `name` unless `shape` has rank `rank`."""
    if shape is None or len(shape) != rank:
        raise ValueError(
            f"`{name}` must be a rank-{rank} tensor {what}; received shape "
            f"{None if shape is None else tuple(shape)}."
        )


def check_last_dim(x, expected, name):
    """Checks hidden states at a layer's call: floating point, and (when
    `expected` is given) `d_model` wide; errors name `name`."""
    dtype = backend.standardize_dtype(x.dtype)
    if "float" not in dtype:
        raise ValueError(
            f"`{name}` must hold floating-point hidden states (batch, seq_len, "
            f"d_model); received dtype {dtype}. Token ids enter the model "
            "through `Preprocess`, `StageShow` or `OscarAssessment`."
        )
    last = x.shape[-1]
    if last is not None and expected is not None and last != expected:
        raise ValueError(
            f"The last dimension of `{name}` must be {expected} (the layer's "
            f"d_model); received shape {tuple(x.shape)}."
        )


def check_token_ids(token_ids, name, vocabulary_size=None, max_length=None):
    """Checks token ids at a public entry point and returns them.

    Shape and dtype are checked when the tensor is traced (cheap, always).
    Values (ids inside `[0, vocabulary_size)`, length <= `max_length`) are
    checked on concrete tensors in eager mode, and with graph assertions under
    `tf.function`. Embedding lookups of out-of-range ids silently return
    zeros on GPU, which is why we check instead of trusting the gather. XLA
    drops assertions, so under `jit_compile=True` only the trace-time checks
    run.
    """
    shape = getattr(token_ids, "shape", None)
    if shape is None:
        token_ids = np.asarray(token_ids)
        shape = token_ids.shape
    if len(shape) != 2:
        hint = (
            " Add a batch axis, e.g. `ids[None, :]`, for one sequence."
            if len(shape) == 1
            else ""
        )
        raise ValueError(
            f"`{name}` must be a rank-2 tensor of token ids with shape "
            f"(batch, sequence_length); received shape {tuple(shape)}.{hint}"
        )
    dtype = backend.standardize_dtype(token_ids.dtype)
    if "int" not in dtype:
        raise ValueError(
            f"`{name}` must hold integer token ids; received dtype {dtype}. "
            "Tokenize text first, or cast ids with "
            f"`keras.ops.cast({name}, 'int32')`."
        )
    length = shape[1]
    if max_length is not None and length is not None and length > max_length:
        raise ValueError(
            f"`{name}` has sequence length {length}, longer than the model's "
            f"max_length={max_length}. Truncate the input to {max_length} "
            "tokens, or build the model with a larger `max_length`."
        )
    if isinstance(token_ids, KerasTensor):
        return token_ids
    if _is_concrete(token_ids):
        _check_concrete_ids(token_ids, name, vocabulary_size)
        return token_ids
    if backend.backend() == "tensorflow":
        return _tf_assert_ids(token_ids, name, vocabulary_size, max_length)
    return token_ids


def _is_concrete(x):
    if isinstance(x, np.ndarray):
        return True
    name = backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if name == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    return name in ("torch", "numpy")


def _check_concrete_ids(token_ids, name, vocabulary_size):
    values = ops.convert_to_numpy(token_ids)
    if values.size == 0:
        raise ValueError(
            f"`{name}` is empty (shape {values.shape}); pass at least one "
            "sequence with at least one token."
        )
    if vocabulary_size is None:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocabulary_size:
        bad = high if high >= vocabulary_size else low
        raise ValueError(
            f"`{name}` contains token id {bad}, outside the vocabulary "
            f"[0, {vocabulary_size}). Use the tokenizer the model was built "
            "for, or build the model with a larger vocabulary size."
        )


def _tf_assert_ids(token_ids, name, vocabulary_size, max_length):
    # TensorFlow-only: graph-mode assertions (ignored by XLA).
    import tensorflow as tf

    checks = []
    if vocabulary_size is not None:
        checks.append(
            tf.debugging.assert_less(
                token_ids,
                tf.cast(vocabulary_size, token_ids.dtype),
                message=f"`{name}` contains a token id >= the vocabulary "
                f"size {vocabulary_size}; use the model's tokenizer or a "
                "larger vocabulary.",
            )
        )
        checks.append(
            tf.debugging.assert_non_negative(
                token_ids, message=f"`{name}` contains a negative token id."
            )
        )
    if max_length is not None:
        checks.append(
            tf.debugging.assert_less_equal(
                tf.shape(token_ids)[1],
                max_length,
                message=f"`{name}` is longer than the model's max_length="
                f"{max_length}; truncate it or raise `max_length`.",
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(token_ids)


def check_heads(d_model, num_heads, d_model_name="d_model"):
    """Returns the per-head size, or a ValueError that says how to fix it."""
    if not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError(
            f"`num_heads` must be a positive integer; received {num_heads!r}."
        )
    if d_model % num_heads != 0:
        lower = (d_model // num_heads) * num_heads
        raise ValueError(
            f"`{d_model_name}` ({d_model}) must be divisible by `num_heads` "
            f"({num_heads}) so that every head gets d_model / num_heads "
            f"features. Use e.g. {d_model_name}={lower or num_heads} or "
            "choose a `num_heads` that divides it."
        )
    return d_model // num_heads


def check_rate(value, name):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); received {value!r}.")
    return float(value)


def is_int(value):
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(value, name):
    if not is_int(value):
        raise ValueError(
            f"`{name}` must be a positive integer; received {value!r}."
        )
    if value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer; received {value!r}."
        )
    return int(value)


def split_source_target(inputs, shapes=False):
    """`(source, target)` from a tuple, list or dict of tensors or shapes."""
    what = "input_shape" if shapes else "inputs"
    if isinstance(inputs, dict):
        try:
            return inputs["source_ids"], inputs["target_ids"]
        except KeyError:
            raise ValueError(
                f"A dict `{what}` needs the keys 'source_ids' and "
                f"'target_ids'; received keys {sorted(inputs)}."
            ) from None
    is_pair = isinstance(inputs, (tuple, list)) and len(inputs) == 2
    if shapes and is_pair and not all(
        isinstance(s, (tuple, list)) for s in inputs
    ):
        is_pair = False  # a single shape like (batch, length)
    if not is_pair:
        raise ValueError(
            "`Transformer` takes `inputs=(source_ids, target_ids)`, two int "
            "tensors of shape (batch, length); received "
            f"{type(inputs).__name__} {getattr(inputs, 'shape', '')}."
        )
    return inputs[0], inputs[1]


def split_outputs(outputs, is_pair):
    """`(output, second)` from a layer that returned a pair when `is_pair`
    (with attention scores, or with a cache), else `(outputs, None)`."""
    return outputs if is_pair else (outputs, None)


def clone_initializer(initializer):
    """A fresh copy: sublayers never share an initializer object (as in Keras
    MHA), since a seeded initializer shared by two kernels would give both
    the same values."""
    return initializer.__class__.from_config(initializer.get_config())
