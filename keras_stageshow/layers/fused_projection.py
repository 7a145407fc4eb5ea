"""`Rehearsal`'s projections as 2-D matmuls on the `EinsumDense` kernels.

Keras's `EinsumDense` is a broadcasting BatchMatMul on TensorFlow whose
kernel gradient is a per-sequence product summed over the batch, the largest
cost in the profile of a training step (benchmarks/README.md). Here a
kernel `(d_model, heads, dim)` is flattened to `(d_model, heads * dim)`, and
the projections that read the same input are concatenated into ONE matmul.
The variables stay `EinsumDense`'s, so weights load either way. Quantized
projections (`model.quantize`) go through their own call, which applies
their scales. Every product runs on rows `(batch * len, features)`
(`on_rows`, also for the feed-forward and the vote): a plain 2-D `MatMul`.
"""

from keras import ops


def on_rows(function, x):
    """`function` applied to `x` `(batch, len, features)` viewed as rows
    `(batch * len, features)`, then viewed as `(batch, len, out)` again.

    On TensorFlow, `keras.ops.matmul` of a 3-D input lowers to `tensordot`,
    whose reshapes cost seven shape ops per product (a cached decoding step
    runs 25 products, without XLA one op at a time); on rows it is one
    `MatMul`. # -> (batch, len, out)
    """
    y = function(ops.reshape(x, (-1, x.shape[-1])))
    return ops.reshape(y, (-1, _length(x), *y.shape[1:]))


def project(x, projections, num_heads, use_bias):
    """`x` through one or more `EinsumDense` projections in one matmul.

    # x: (batch, len, d_model) -> [(batch, len, num_heads, dim)] per projection
    """
    if any(p.dtype_policy.quantization_mode for p in projections):
        return [p(x) for p in projections]
    d_model = x.shape[-1]
    kernels = [ops.reshape(p.kernel, (d_model, -1)) for p in projections]
    widths = [k.shape[-1] for k in kernels]
    kernel = kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, 1)
    bias = None
    if use_bias:
        biases = [ops.reshape(p.bias, (-1,)) for p in projections]
        bias = biases[0] if len(biases) == 1 else ops.concatenate(biases, 0)
    # (batch * len, sum(widths))
    y = _affine(ops.reshape(x, (-1, d_model)), kernel, bias)
    parts = [y] if len(widths) == 1 else ops.split(
        y, [sum(widths[: i + 1]) for i in range(len(widths) - 1)], axis=-1
    )
    return [
        ops.reshape(part, (-1, _length(x), num_heads, width // num_heads))
        for part, width in zip(parts, widths)
    ]


def _affine(x, kernel, bias):
    """`x @ kernel + bias` in `x`'s dtype."""
    y = ops.matmul(x, ops.cast(kernel, x.dtype))
    return y if bias is None else y + ops.cast(bias, y.dtype)


def project_output(x, dense, use_bias):
    """The output projection `dense` as one 2-D matmul.

    # x: (batch, len, num_heads, value_dim) -> (batch, len, output_width)
    """
    if dense.dtype_policy.quantization_mode:
        return dense(x)
    # (num_heads, value_dim, out) -> (num_heads * value_dim, out)
    kernel = ops.reshape(dense.kernel, (-1, dense.kernel.shape[-1]))
    # (batch * len, num_heads * value_dim) -> (batch * len, out)
    bias = dense.bias if use_bias else None
    y = _affine(ops.reshape(x, (-1, kernel.shape[0])), kernel, bias)
    return ops.reshape(y, (-1, _length(x), kernel.shape[-1]))


def _length(x):
    """The length axis of `(batch, len, ...)`: an int where it is static."""
    return x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
